//! The same checks for every framework: `framework_tests!(name)` instantiates them. They use the real
//! MNIST files (`MNIST_DIR`, else the cache, else a download).

use common::harness::{self, DeviceRequest, RunSpec, Silent};
use common::{Mnist, ModelKind, Weights};

fn mnist() -> Mnist {
    Mnist::load(None).unwrap_or_else(|e| panic!("these tests need MNIST (set MNIST_DIR): {e}"))
}

/// Largest absolute difference relative to the largest magnitude.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn logits_match_reference(framework: &str) {
    let data = mnist();
    let n = 16;
    let images = &data.test.normalized_images()[..n * 784];
    for model in ModelKind::ALL {
        let weights = Weights::init(&model.spec(), 11);
        let got = lenet_compare::logits(framework, model, &weights, images).unwrap();
        let want = common::reference::forward(&model.spec(), &weights, images).unwrap();
        let err = relative_error(&got, &want);
        assert!(err < 1e-4, "{framework} {model}: relative error {err}");
    }
}

fn spec(framework: &str, model: ModelKind, epochs: u32, limit: usize) -> RunSpec {
    RunSpec {
        device: DeviceRequest::Cpu,
        epochs,
        limit: Some(limit),
        seed: 1,
        ..RunSpec::recipe(framework, model)
    }
}

fn imports_the_shared_weights(framework: &str) {
    let mut data = mnist();
    data.limit(64);
    for model in ModelKind::ALL {
        let s = spec(framework, model, 1, 64);
        let init = Weights::init(&model.spec(), s.seed);
        let trainer = lenet_compare::trainer(framework, &s, &data, &init).unwrap();
        assert_eq!(trainer.weights().unwrap(), init, "{framework} {model}");
        let backend = trainer.backend();
        assert_eq!(backend.framework, framework);
        assert_eq!(backend.device, common::DeviceKind::Cpu);
    }
}

fn learns_on_2000_images(framework: &str) {
    let mut data = mnist();
    data.limit(2000);
    let s = spec(framework, ModelKind::LeNet2, 3, 2000);
    let init = Weights::init(&s.model.spec(), s.seed);
    let mut trainer = lenet_compare::trainer(framework, &s, &data, &init).unwrap();
    let out = harness::train(trainer.as_mut(), &s, data.train.len(), &mut Silent);
    assert_eq!(out.failure, None);
    assert_eq!(out.epochs.len(), 3);
    let first = &out.epochs[0];
    let last = &out.epochs[2];
    assert!(last.train_loss < first.train_loss, "{first:?} -> {last:?}");
    let test = out.final_test.unwrap();
    assert_eq!(test.examples, 2000);
    // Chance is 10%; three epochs on 2,000 images reach about 90%.
    assert!(test.accuracy > 0.8, "test accuracy {}", test.accuracy);
    assert!(out.final_train.unwrap().accuracy > 0.8);
}

fn cuda_is_used_or_refused(framework: &str) {
    let mut data = mnist();
    data.limit(64);
    let s = RunSpec {
        device: DeviceRequest::Cuda,
        ..spec(framework, ModelKind::LeNet2, 1, 64)
    };
    let init = Weights::init(&s.model.spec(), 0);
    match lenet_compare::trainer(framework, &s, &data, &init) {
        Ok(t) => {
            assert!(lenet_compare::cuda_available(framework));
            assert_eq!(t.backend().device, common::DeviceKind::Cuda);
        }
        Err(e) => {
            assert!(!lenet_compare::cuda_available(framework));
            assert!(e.to_string().contains("CUDA"), "{e}");
        }
    }
}

/// A learning rate of 1e30 makes the second step's loss NaN: the run stops at the end of the first
/// epoch, names the step, and keeps no epoch record of the broken epoch.
fn a_nan_loss_stops_the_run(framework: &str) {
    let mut data = mnist();
    data.limit(256);
    let s = RunSpec {
        learning_rate: 1e30,
        ..spec(framework, ModelKind::LeNet2, 3, 256)
    };
    let init = Weights::init(&s.model.spec(), s.seed);
    let mut trainer = lenet_compare::trainer(framework, &s, &data, &init).unwrap();
    let out = harness::train(trainer.as_mut(), &s, data.train.len(), &mut Silent);
    let failure = out.failure.expect("a NaN loss must fail the run");
    assert!(
        failure.contains("in epoch 1, first at step 2 of 8 (loss NaN)"),
        "{framework}: {failure}"
    );
    assert!(out.epochs.is_empty());
    assert!(out.final_test.is_none());
}

macro_rules! framework_tests {
    ($($name:ident),*) => {$(
        mod $name {
            #[test]
            fn logits_match_reference() {
                super::logits_match_reference(&stringify!($name).replace('_', "-"));
            }
            #[test]
            fn imports_the_shared_weights() {
                super::imports_the_shared_weights(&stringify!($name).replace('_', "-"));
            }
            #[test]
            fn learns_on_2000_images() {
                super::learns_on_2000_images(&stringify!($name).replace('_', "-"));
            }
            #[test]
            fn a_nan_loss_stops_the_run() {
                super::a_nan_loss_stops_the_run(&stringify!($name).replace('_', "-"));
            }
            #[test]
            fn cuda_is_used_or_refused() {
                super::cuda_is_used_or_refused(&stringify!($name).replace('_', "-"));
            }
        }
    )*};
}

framework_tests!(tch, candle, candle_firstmax, burn);

/// Per-step losses of `steps` Adam steps of batch 32 on the first `32 * steps` training images, in
/// the seed's order: each call of `train_epoch` with one batch is exactly one step.
fn step_losses(framework: &str, model: ModelKind, steps: usize) -> Vec<f64> {
    let mut data = mnist();
    let n = 32 * steps;
    data.limit(n);
    let s = spec(framework, model, 1, n);
    let init = Weights::init(&model.spec(), s.seed);
    let mut trainer = lenet_compare::trainer(framework, &s, &data, &init).unwrap();
    let order = common::order::epoch_order(s.seed, 1, n);
    order
        .chunks(32)
        .map(|batch| trainer.train_epoch(batch, &mut |_| {}).unwrap().mean_loss())
        .collect()
}

/// The same weights give the same logits as tch on a batch of real images.
fn logits_parity_with_tch(framework: &str) {
    let data = mnist();
    let images = &data.test.normalized_images()[..64 * 784];
    for model in ModelKind::ALL {
        let weights = Weights::init(&model.spec(), 5);
        let got = lenet_compare::logits(framework, model, &weights, images).unwrap();
        let want = lenet_compare::logits("tch", model, &weights, images).unwrap();
        let err = relative_error(&got, &want);
        assert!(
            err < 1e-4,
            "{framework} {model} logits: relative error {err}"
        );
    }
}

/// 20 Adam steps on the same batches from the same weights give the same losses as tch, within
/// `tolerance(model, step)` (relative to the loss, or absolute below 1).
fn step_parity_with_tch(framework: &str, tolerance: impl Fn(ModelKind, usize) -> f64) {
    for model in ModelKind::ALL {
        let got = step_losses(framework, model, 20);
        let want = step_losses("tch", model, 20);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let step = i + 1;
            assert!(
                (g - w).abs() <= tolerance(model, step) * w.abs().max(1.0),
                "{framework} {model} step {step}: loss {g} against tch's {w}"
            );
        }
        assert!(want[19] < want[0], "{model}: the steps learn ({want:?})");
    }
}

/// Parity with tch. burn is held to both. Idiomatic candle is held to its logits only: candle 0.11.1's `max_pool2d`
/// backward pass does not route gradients as PyTorch's does (see candle-impl's tests), so its
/// training steps drift from tch's; `candle-firstmax`, which differs from it only in the pooling,
/// is held to the steps too, which checks everything else (convolutions, linear layers, loss,
/// Adam, data order) step for step.
mod parity {
    use common::ModelKind;

    #[test]
    fn candle_logits() {
        super::logits_parity_with_tch("candle");
    }

    #[test]
    fn candle_firstmax_logits() {
        super::logits_parity_with_tch("candle-firstmax");
    }

    #[test]
    fn candle_firstmax_steps() {
        super::step_parity_with_tch("candle-firstmax", |_, _| 1e-3);
    }

    #[test]
    fn burn_logits() {
        super::logits_parity_with_tch("burn");
    }

    /// burn follows tch within 1e-3 for all 20 LeNet2 steps and the first 10 LeNet3 steps. After
    /// that LeNet3 drifts to about 3e-3: a few of its fc1 gradients are of the order of 1e-9,
    /// made of f32 rounding in conv3's output, and Adam (eps 1e-8) turns each into an update of a
    /// few percent of the learning rate whatever its exact value; burn's sums round differently
    /// from libtorch's, so those updates differ (README, "burn").
    #[test]
    fn burn_steps() {
        super::step_parity_with_tch("burn", |model, step| match model {
            ModelKind::LeNet3 if step > 10 => 5e-3,
            _ => 1e-3,
        });
    }
}

/// A model trained and saved by each framework, reloaded into every framework: the same test
/// accuracy everywhere (the same correct count, on the same 2,000 test images), equal to what the
/// training run itself measured.
#[test]
fn saved_models_reload_in_every_framework() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = mnist();
    data.limit(2000);
    for model in ModelKind::ALL {
        for &trained_with in lenet_compare::FRAMEWORKS {
            let s = spec(trained_with, model, 1, 2000);
            let options = lenet_compare::RunOptions {
                keep_weights: true,
                ..Default::default()
            };
            let out = lenet_compare::run(&s, &options).unwrap();
            let report = out.report;
            assert!(
                report.succeeded(),
                "{trained_with} {model}: {:?}",
                report.failure
            );
            let trained = report.final_test.clone().unwrap();
            let path = dir
                .path()
                .join(format!("{trained_with}-{model}.safetensors"));
            lenet_compare::model_file(&report, out.weights.unwrap())
                .write(&path)
                .unwrap();
            let file = common::weights::ModelFile::read(&path).unwrap();
            assert_eq!(file.model, model);
            assert_eq!(file.metadata["framework"], trained_with);
            for &evaluated_with in lenet_compare::FRAMEWORKS {
                let e = lenet_compare::evaluate(
                    evaluated_with,
                    DeviceRequest::Cpu,
                    file.model,
                    &file.weights,
                    &data,
                )
                .unwrap();
                assert_eq!(e.test.examples, trained.examples);
                let correct = (trained.accuracy * trained.examples as f64).round() as u64;
                assert_eq!(
                    e.test.correct, correct,
                    "{model} trained with {trained_with}, evaluated with {evaluated_with}"
                );
            }
        }
    }
}

/// Largest magnitude and standard deviation of a tensor's values.
fn spread(values: &[f32]) -> (f32, f32) {
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    (values.iter().fold(0f32, |m, v| m.max(v.abs())), sd)
}

/// `--init native` draws what the defaults table says each framework draws: checked on LeNet3's
/// conv2 (fan_in 32 x 3 x 3 = 288) and fc1 (1,024 inputs).
#[test]
fn native_init_follows_the_defaults_table() {
    let spec = ModelKind::LeNet3.spec();
    let shared = Weights::init(&spec, 5);
    let conv_fan = 288f32;
    let fc_fan = 1024f32;
    for framework in ["tch", "candle", "burn"] {
        let w = lenet_compare::native_weights(framework, &spec, 5).unwrap();
        w.check(&spec).unwrap();
        assert_ne!(w, shared, "{framework}");
        let (conv_max, conv_sd) = spread(&w.tensors["conv2.weight"].data);
        let (bias_max, _) = spread(&w.tensors["conv2.bias"].data);
        let (fc_max, fc_sd) = spread(&w.tensors["fc1.weight"].data);
        let (fc_bias_max, _) = spread(&w.tensors["fc1.bias"].data);
        let near = |got: f32, want: f32| (got / want - 1.0).abs() < 0.1;
        match framework {
            "tch" => {
                // Kaiming uniform with ReLU's gain: ±√6/√fan_in; conv biases zero.
                let b = 6f32.sqrt() / conv_fan.sqrt();
                assert!(conv_max <= b && near(conv_max, b), "{conv_max} vs {b}");
                assert_eq!(bias_max, 0.0);
                assert!(near(fc_max, 6f32.sqrt() / fc_fan.sqrt()), "{fc_max}");
                assert!(fc_bias_max <= 1.0 / fc_fan.sqrt());
            }
            "candle" => {
                // Kaiming normal with ReLU's gain: sd √2/√fan_in; conv bias ±1/√in_channels.
                assert!(near(conv_sd, 2f32.sqrt() / conv_fan.sqrt()), "{conv_sd}");
                assert!(near(fc_sd, 2f32.sqrt() / fc_fan.sqrt()), "{fc_sd}");
                assert!(bias_max <= 1.0 / 32f32.sqrt() && bias_max > 1.0 / conv_fan.sqrt());
            }
            _ => {
                // burn: PyTorch's scheme, ±1/√fan_in for weights and biases.
                let b = 1.0 / conv_fan.sqrt();
                assert!(conv_max <= b && near(conv_max, b), "{conv_max} vs {b}");
                assert!(bias_max <= b);
                assert!(near(fc_max, 1.0 / fc_fan.sqrt()), "{fc_max}");
            }
        }
        let again = lenet_compare::native_weights(framework, &spec, 5).unwrap();
        // tch and burn seed their generators; candle's CPU generator cannot be seeded.
        assert_eq!(again == w, framework != "candle", "{framework}");
    }
}

/// A run from each framework's own initialisers trains and says so in its report.
#[test]
fn native_init_trains() {
    for framework in ["tch", "candle", "burn"] {
        let s = RunSpec {
            init: common::harness::InitKind::Native,
            ..spec(framework, ModelKind::LeNet2, 2, 2000)
        };
        let out = lenet_compare::run(&s, &Default::default()).unwrap();
        let r = out.report;
        assert!(r.succeeded(), "{framework}: {:?}", r.failure);
        assert_eq!(r.spec.init, common::harness::InitKind::Native);
        // candle's native initialisers cannot be seeded, so its runs differ: 84-87% test accuracy in
        // six runs, and below 80% once. Chance is 10%; half is learning without flakiness.
        let accuracy = r.final_test.unwrap().accuracy;
        assert!(accuracy > 0.5, "{framework}: {accuracy}");
        assert!(
            r.epochs[1].train_loss < r.epochs[0].train_loss,
            "{framework}"
        );
    }
}

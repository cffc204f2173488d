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

macro_rules! framework_tests {
    ($($name:ident),*) => {$(
        mod $name {
            #[test]
            fn logits_match_reference() {
                super::logits_match_reference(stringify!($name));
            }
            #[test]
            fn imports_the_shared_weights() {
                super::imports_the_shared_weights(stringify!($name));
            }
            #[test]
            fn learns_on_2000_images() {
                super::learns_on_2000_images(stringify!($name));
            }
            #[test]
            fn cuda_is_used_or_refused() {
                super::cuda_is_used_or_refused(stringify!($name));
            }
        }
    )*};
}

framework_tests!(tch);

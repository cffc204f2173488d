//! One training step (batch 32 and batch 256), inference on a batch of 1,000 and a served
//! prediction of one image (`predict_b1`: the framework's `Predictor`, the image from the host and
//! the logits back), per framework and model, on the CPU and, where a framework can use one, on
//! CUDA, beside the `ort` row (the exported model served by ONNX Runtime from Rust) where its
//! export and library are there. Groups are named after what is
//! measured (`train_step_b32/lenet2`) and each (framework, device) is one `BenchmarkId`
//! (`tch/cpu`), so criterion's report sets the frameworks side by side; the training steps are
//! measured in the tuned profile too (`tch-tuned/cpu`), which measures each framework's tuning
//! alone. A step's totals are read back inside the timed region, which waits for the device.

use common::framework::Framework;
use common::harness::{DeviceRequest, Profile, RunSpec, EVAL_BATCH_SIZE};
use common::{Dataset, Mnist, ModelKind, SplitKind, Trainer, Weights};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn data() -> Mnist {
    let mut data = match datasets::load(Dataset::Mnist, None) {
        Ok(data) => data,
        Err(e) => {
            eprintln!("error: the benches need MNIST (set MNIST_DIR): {e}");
            std::process::exit(2);
        }
    };
    data.limit(EVAL_BATCH_SIZE);
    data
}

/// The devices to measure `framework` on: the CPU, and CUDA when it can use it here.
fn devices(framework: &dyn Framework) -> Vec<DeviceRequest> {
    let mut d = vec![DeviceRequest::Cpu];
    if framework.cuda_available() {
        d.push(DeviceRequest::Cuda);
    }
    d
}

/// A trainer with the recipe's settings (but `batch_size` and `profile`) and the shared weights of
/// seed 0.
fn trainer(
    framework: &dyn Framework,
    model: ModelKind,
    device: DeviceRequest,
    batch_size: usize,
    profile: Profile,
    data: &Mnist,
) -> Box<dyn Trainer> {
    let spec = RunSpec {
        device,
        batch_size,
        profile,
        ..RunSpec::recipe(framework.name(), model)
    };
    let init = Weights::init(&model.spec(), 0);
    framework
        .trainer(&spec, data, &init)
        .unwrap_or_else(|e| panic!("{} on {device}: {e}", framework.name()))
}

fn benches(c: &mut Criterion) {
    let data = data();
    for model in ModelKind::ALL {
        for batch in [32usize, 256] {
            let mut group = c.benchmark_group(format!("train_step_b{batch}/{model}"));
            // One call of `train_epoch` with one batch's indices is exactly one step.
            let order: Vec<u32> = (0..batch as u32).collect();
            for &framework in lenet_compare::FRAMEWORKS {
                for device in devices(framework) {
                    for profile in Profile::ALL {
                        let name = match profile {
                            Profile::Idiomatic => framework.name().to_string(),
                            Profile::Tuned => format!("{}-tuned", framework.name()),
                        };
                        // Built only when criterion's filter selects the id: a tuned setting
                        // can be process-wide (candle's allocator), so a filtered run measures
                        // one profile alone.
                        let mut built = None;
                        group.bench_function(BenchmarkId::new(name, device), |b| {
                            let trainer = built.get_or_insert_with(|| {
                                trainer(framework, model, device, batch, profile, &data)
                            });
                            b.iter(|| trainer.train_epoch(&order, &mut |_| {}).unwrap())
                        });
                    }
                }
            }
            group.finish();
        }
        let mut group = c.benchmark_group(format!("inference_b{EVAL_BATCH_SIZE}/{model}"));
        for &framework in lenet_compare::FRAMEWORKS {
            for device in devices(framework) {
                // The test split holds exactly one evaluation batch.
                let mut built = None;
                group.bench_function(BenchmarkId::new(framework.name(), device), |b| {
                    let trainer = built.get_or_insert_with(|| {
                        trainer(framework, model, device, 32, Profile::Idiomatic, &data)
                    });
                    b.iter(|| trainer.evaluate(SplitKind::Test).unwrap())
                });
            }
        }
        group.finish();
        let mut group = c.benchmark_group(format!("predict_b1/{model}"));
        let image = &data.test.normalized_images()[..common::serve::PIXELS];
        let weights = Weights::init(&model.spec(), 0);
        for &framework in lenet_compare::FRAMEWORKS {
            for device in devices(framework) {
                let mut built = None;
                group.bench_function(BenchmarkId::new(framework.name(), device), |b| {
                    let predictor = built.get_or_insert_with(|| {
                        framework
                            .predictor(model, &weights, device, None)
                            .unwrap_or_else(|e| panic!("{} on {device}: {e}", framework.name()))
                    });
                    b.iter(|| predictor.logits(image).unwrap())
                });
            }
        }
        #[cfg(feature = "ort")]
        ort_predict_b1(&mut group, model, image);
        group.finish();
    }
}

/// The `ort` row's prediction of one image (`ort/cpu`), on the export of the model file that
/// `cargo xtask serve` trains and exports (`target/serve-models/MODEL-seed0-e2.onnx`) with the
/// ONNX Runtime library `ORT_DYLIB_PATH` names; skipped, and said so, without either.
#[cfg(feature = "ort")]
fn ort_predict_b1(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    model: ModelKind,
    image: &[f32],
) {
    use common::serve::Predictor;
    let onnx = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/serve-models/{model}-seed0-e2.onnx"));
    let library = match onnx_serve::library() {
        Ok(library) if onnx.is_file() => library,
        _ => {
            eprintln!(
                "predict_b1/{model}/ort: skipped: it needs {} (cargo xtask serve) and \
                 ORT_DYLIB_PATH (python3 python/serve.py --ort-library)",
                onnx.display()
            );
            return;
        }
    };
    let mut predictor = onnx_serve::predictor(&onnx, &library, None)
        .unwrap_or_else(|e| panic!("{}: {e}", onnx_serve::ROW));
    group.bench_function(BenchmarkId::new(onnx_serve::ROW, "cpu"), |b| {
        b.iter(|| predictor.logits(image).unwrap())
    });
}

criterion_group!(name = group; config = Criterion::default().sample_size(20); targets = benches);
criterion_main!(group);

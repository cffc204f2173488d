//! One training step (batch 32) and one evaluation pass, per framework and model, on the CPU.
//! Groups are named after what is measured and each framework is one `BenchmarkId`, so criterion's
//! report sets the frameworks side by side. A step's totals are read back inside the timed region,
//! which waits for the device.

use common::harness::{DeviceRequest, RunSpec, BATCH_SIZE};
use common::{Mnist, ModelKind, SplitKind, Trainer, Weights};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn data() -> Mnist {
    let mut data = Mnist::load(None).expect("the benches need MNIST (set MNIST_DIR)");
    data.limit(1000);
    data
}

/// A CPU trainer with the recipe's settings and the shared weights of seed 0.
fn trainer(framework: &str, model: ModelKind, data: &Mnist) -> Box<dyn Trainer> {
    let spec = RunSpec {
        device: DeviceRequest::Cpu,
        ..RunSpec::recipe(framework, model)
    };
    let init = Weights::init(&model.spec(), 0);
    lenet_compare::trainer(framework, &spec, data, &init).unwrap()
}

fn benches(c: &mut Criterion) {
    let data = data();
    for model in ModelKind::ALL {
        let mut group = c.benchmark_group(format!("train_step/{model}"));
        let order: Vec<u32> = (0..BATCH_SIZE as u32).collect();
        for &framework in lenet_compare::FRAMEWORKS {
            let mut trainer = trainer(framework, model, &data);
            group.bench_function(BenchmarkId::new(framework, BATCH_SIZE), |b| {
                b.iter(|| trainer.train_epoch(&order, &mut |_| {}).unwrap())
            });
        }
        group.finish();
        let mut group = c.benchmark_group(format!("evaluate_1000/{model}"));
        for &framework in lenet_compare::FRAMEWORKS {
            let mut trainer = trainer(framework, model, &data);
            group.bench_function(BenchmarkId::new(framework, 1000), |b| {
                b.iter(|| trainer.evaluate(SplitKind::Test).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(name = group; config = Criterion::default().sample_size(30); targets = benches);
criterion_main!(group);

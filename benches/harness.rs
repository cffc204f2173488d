//! What the harness adds to a bare training loop, for every registered framework: the same 20 steps
//! of batch 32 on the CPU, once through `Trainer::train_epoch` (order upload, on-device sums, the
//! per-step loss kept, progress callback, one read-back) and once as the framework's plain loop of
//! gather, forward, loss, backward and optimiser step (`Framework::bare`). criterion repeats each
//! many times and reports its spread, which the one-shot timing of `examples/breakdown.rs` cannot.
//! And what serving's measurement adds to a prediction of one image on the CPU: the predictor's
//! call alone (`bare`) against one prediction timed by `common::serve::latencies` as `lenet serve`
//! times each (`measured`).

use common::harness::{DeviceRequest, RunSpec};
use common::{Dataset, ModelKind, Weights};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const STEPS: usize = 20;

fn benches(c: &mut Criterion) {
    let mut data =
        datasets::load(Dataset::Mnist, None).expect("the benches need MNIST (set MNIST_DIR)");
    data.limit(32 * STEPS);
    let order = common::order::epoch_order(0, 1, data.train.len());
    for &framework in lenet_compare::FRAMEWORKS {
        let name = framework.name();
        for model in ModelKind::ALL {
            let mut group = c.benchmark_group(format!("{name}_{STEPS}_steps/{model}"));
            let mut bare = framework.bare(model, &data).unwrap();
            group.bench_function(BenchmarkId::new("bare", 32), |b| {
                b.iter(|| common::bare::steps(bare.as_mut(), &order, 32).unwrap())
            });
            let spec = RunSpec {
                device: DeviceRequest::Cpu,
                ..RunSpec::recipe(name, model)
            };
            let init = Weights::init(&model.spec(), 0);
            let mut trainer = framework.trainer(&spec, &data, &init).unwrap();
            group.bench_function(BenchmarkId::new("harness", 32), |b| {
                b.iter(|| trainer.train_epoch(&order, &mut |_| {}).unwrap())
            });
            group.finish();
            let mut group = c.benchmark_group(format!("{name}_predict_b1/{model}"));
            let image = &data.test.normalized_images()[..common::serve::PIXELS];
            let mut predictor = framework
                .predictor(model, &init, DeviceRequest::Cpu, None)
                .unwrap();
            group.bench_function(BenchmarkId::new("bare", 1), |b| {
                b.iter(|| predictor.logits(image).unwrap())
            });
            group.bench_function(BenchmarkId::new("measured", 1), |b| {
                b.iter(|| common::serve::latencies(predictor.as_mut(), image, 0, 1).unwrap())
            });
            group.finish();
        }
    }
}

criterion_group!(name = group; config = Criterion::default().sample_size(10); targets = benches);
criterion_main!(group);

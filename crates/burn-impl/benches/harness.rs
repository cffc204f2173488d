//! What the harness adds to a bare burn training loop: the same 20 steps of batch 32, once through
//! `Trainer::train_epoch` (order upload, on-device sums, progress callback, one read-back) and once
//! as a plain loop of select, forward, loss, backward and the optimiser step. criterion repeats each
//! many times and reports its spread, which the one-shot timing of the `breakdown` example cannot.

use common::harness::{DeviceRequest, RunSpec, Trainer};
use common::{Mnist, ModelKind, Weights};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const STEPS: usize = 20;

fn benches(c: &mut Criterion) {
    let mut data = Mnist::load(None).expect("the benches need MNIST (set MNIST_DIR)");
    data.limit(32 * STEPS);
    let order = common::order::epoch_order(0, 1, data.train.len());
    for model in ModelKind::ALL {
        let mut group = c.benchmark_group(format!("burn_{STEPS}_steps/{model}"));
        let mut bare = burn_impl::bench::Bare::new(model, &data).unwrap();
        group.bench_function(BenchmarkId::new("bare", 32), |b| {
            b.iter(|| bare.steps(&order, 32).unwrap())
        });
        let spec = RunSpec {
            device: DeviceRequest::Cpu,
            ..RunSpec::recipe("burn", model)
        };
        let init = Weights::init(&model.spec(), 0);
        let mut trainer = burn_impl::BurnTrainer::new(&spec, &data, &init).unwrap();
        group.bench_function(BenchmarkId::new("harness", 32), |b| {
            b.iter(|| trainer.train_epoch(&order, &mut |_| {}).unwrap())
        });
        group.finish();
    }
}

criterion_group!(name = group; config = Criterion::default().sample_size(10); targets = benches);
criterion_main!(group);

//! Where a burn training step's time goes on the CPU, and what the harness adds to a bare loop:
//! `cargo run --release -p burn-impl --example breakdown -- [STEPS]` (MNIST from `MNIST_DIR`).
//! Build it with `--no-default-features` (or `--features simd`, `--features rayon`) to measure
//! the Flex backend's other configurations. Prints the step split into forward, backward and
//! optimiser, then each layer's forward and backward time measured alone on a real batch.

use common::harness::{DeviceRequest, RunSpec, Trainer};
use common::{Mnist, ModelKind, Weights};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let mut data = Mnist::load(None)?;
    data.limit(32 * steps);
    let order = common::order::epoch_order(0, 1, data.train.len());
    let features: Vec<&str> = [
        (cfg!(feature = "simd"), "simd"),
        (cfg!(feature = "rayon"), "rayon"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    println!("burn Flex, features [{}]", features.join(", "));
    for model in ModelKind::ALL {
        let mut bare = burn_impl::bench::Bare::new(model, &data)?;
        bare.steps(&order[..32 * 10], 32)?; // warm-up
        let bare_time = bare.steps(&order, 32)?;
        let spec = RunSpec {
            device: DeviceRequest::Cpu,
            ..RunSpec::recipe("burn", model)
        };
        let init = Weights::init(&model.spec(), 0);
        let mut trainer = burn_impl::BurnTrainer::new(&spec, &data, &init)?;
        trainer.train_epoch(&order[..32 * 10], &mut |_| {})?;
        let start = std::time::Instant::now();
        trainer.train_epoch(&order, &mut |_| {})?;
        let harness_time = start.elapsed();
        let [fwd, bwd, opt] = bare.breakdown(&order, 32)?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3 / steps as f64;
        println!(
            "burn {model}: bare loop {:.2} ms/step, harness {:.2} ms/step ({:+.1}%); \
             forward+loss {:.2}, backward {:.2}, optimiser {:.2} ms/step",
            ms(bare_time),
            ms(harness_time),
            (harness_time.as_secs_f64() / bare_time.as_secs_f64() - 1.0) * 100.0,
            ms(fwd),
            ms(bwd),
            ms(opt)
        );
        let ops = bare.op_times(&order[..32], 50)?;
        let step = bare_time.as_secs_f64() * 1e3 / steps as f64;
        let pct = |d: std::time::Duration| d.as_secs_f64() * 1e3 / step * 100.0;
        println!(
            "  {:<48} {:>8} {:>8} {:>6}",
            "layer", "fwd ms", "bwd ms", "% step"
        );
        for op in &ops {
            println!(
                "  {:<48} {:>8.3} {:>8.3} {:>5.1}%",
                op.name,
                op.forward.as_secs_f64() * 1e3,
                op.backward.as_secs_f64() * 1e3,
                pct(op.forward + op.backward)
            );
        }
    }
    Ok(())
}

//! Where a training step's time goes on the CPU, and what the harness adds to a bare loop, for every
//! registered framework (or those named): `cargo run --release --example breakdown -- [STEPS]
//! [FRAMEWORK...]` (MNIST from `MNIST_DIR`). Prints, for each framework and model, the step split
//! into forward, backward and optimiser, then each layer's forward and backward time measured alone
//! on a real batch, where the framework measures that (`BareLoop::op_times`). Build with
//! `--features burn-rayon` (or burn-impl's other features) to measure burn's other configurations.

use std::time::{Duration, Instant};

use common::bare;
use common::harness::{DeviceRequest, RunSpec};
use common::{Dataset, ModelKind, Weights};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let steps: usize = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|_| anyhow::anyhow!("STEPS must be a number, not '{s}'"))?,
        None => 200,
    };
    let wanted: Vec<String> = args.collect();
    let frameworks = if wanted.is_empty() {
        lenet_compare::FRAMEWORKS.to_vec()
    } else {
        wanted
            .iter()
            .map(|w| lenet_compare::framework(w))
            .collect::<Result<_, _>>()?
    };
    let mut data = datasets::load(Dataset::Mnist, None)?;
    data.check_limit(32 * steps, common::SplitKind::Train)?;
    data.limit(32 * steps);
    let order = common::order::epoch_order(0, 1, data.train.len());
    let warm_up = &order[..(32 * 10).min(order.len())];
    for framework in frameworks {
        let name = framework.name();
        for model in ModelKind::ALL {
            let mut loop_ = framework.bare(model, &data)?;
            bare::steps(loop_.as_mut(), warm_up, 32)?;
            let bare_time = bare::steps(loop_.as_mut(), &order, 32)?;
            let spec = RunSpec {
                device: DeviceRequest::Cpu,
                ..RunSpec::recipe(name, model)
            };
            let init = Weights::init(&model.spec(), 0);
            let mut trainer = framework.trainer(&spec, &data, &init)?;
            trainer.train_epoch(warm_up, &mut |_| {})?;
            let start = Instant::now();
            trainer.train_epoch(&order, &mut |_| {})?;
            trainer.synchronize()?;
            let harness_time = start.elapsed();
            let [fwd, bwd, opt] = bare::breakdown(loop_.as_mut(), &order, 32)?;
            let ms = |d: Duration| d.as_secs_f64() * 1e3 / steps as f64;
            println!(
                "{name} {model}: bare loop {:.2} ms/step, harness {:.2} ms/step ({:+.1}%); \
                 forward+loss {:.2}, backward {:.2}, optimiser {:.2} ms/step",
                ms(bare_time),
                ms(harness_time),
                (harness_time.as_secs_f64() / bare_time.as_secs_f64() - 1.0) * 100.0,
                ms(fwd),
                ms(bwd),
                ms(opt)
            );
            let step_ms = bare_time.as_secs_f64() * 1e3 / steps as f64;
            print_layers(&loop_.op_times(&order[..32], 50)?, step_ms);
        }
    }
    Ok(())
}

/// Each layer's forward and backward time (and the backward's parts, where the framework times
/// them), and its share of a bare step of `step_ms`.
fn print_layers(ops: &[common::bare::OpTime], step_ms: f64) {
    if ops.is_empty() {
        return;
    }
    let pct = |d: Duration| d.as_secs_f64() * 1e3 / step_ms * 100.0;
    println!(
        "  {:<72} {:>8} {:>8} {:>6}",
        "layer", "fwd ms", "bwd ms", "% step"
    );
    for op in ops {
        println!(
            "  {:<72} {:>8.3} {:>8.3} {:>5.1}%",
            op.name,
            op.forward.as_secs_f64() * 1e3,
            op.backward.as_secs_f64() * 1e3,
            pct(op.forward + op.backward)
        );
        for (part, d) in &op.parts {
            println!(
                "    {:<70} {:>8} {:>8.3} {:>5.1}%",
                format!("backward: {part}"),
                "",
                d.as_secs_f64() * 1e3,
                pct(*d)
            );
        }
    }
}

//! The captured step on the CPU: every step advances the state, the self-check passes a correct
//! replay and catches a wrong one, and the device-side Adam follows candle-nn's AdamW.

use super::*;
use candle_core::Device;
use candle_nn::ParamsAdamW;
use candle_nn::{AdamW, Optimizer};

/// Fixed gradients, the same for both optimisers: a sine pattern per step at four magnitudes.
fn gradient(step: usize, n: usize) -> Tensor {
    let values: Vec<f32> = (0..n)
        .map(|i| ((step * 31 + i * 7) as f32 * 0.37).sin() * 10f32.powi(-((i % 4) as i32)))
        .collect();
    Tensor::from_vec(values, n, &Device::Cpu).unwrap()
}

/// A tuned step over synthetic data: LeNet2 with the shared initial weights, `n` images of
/// ten classes, batches of 32, on the CPU.
fn tuned(n: usize) -> (Captured, candle_nn::VarMap) {
    let model = common::spec::ModelKind::LeNet2;
    let weights = common::weights::Weights::init(&model.spec(), 3);
    let (varmap, net) =
        crate::weights::build(model, &weights, &Device::Cpu, crate::Pool::MaxPool2d).unwrap();
    let side = common::mnist::IMAGE_SIDE;
    let pixels: Vec<f32> = (0..n * side * side)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let labels: Vec<u32> = (0..n).map(|i| (i * 7 % 10) as u32).collect();
    let images = Tensor::from_vec(pixels, (n, 1, side, side), &Device::Cpu).unwrap();
    let labels = Tensor::from_vec(labels, n, &Device::Cpu).unwrap();
    let vars = crate::weights::named_vars(&varmap).unwrap();
    let adam = DeviceAdam::named(vars, crate::captured::adam_params(1e-3)).unwrap();
    let state = StepState::new(net, adam, images, labels, 32).unwrap();
    (Captured::new(state, 1e-3), varmap)
}

/// Every step of an epoch, full or short, advances the device's step count by one and
/// changes every parameter tensor: a step on stale scalars or stale buffers would leave one
/// of them where it was. The epoch's sums count every example.
#[test]
fn every_step_advances_the_step_count_and_the_parameters() {
    let n = 32 * 10 + 5;
    let (mut captured, varmap) = tuned(n);
    let order: Vec<u32> = (0..n as u32).rev().collect();
    let mut last = crate::weights::export(&varmap).unwrap();
    for epoch in 0..2 {
        let mut steps_seen = 0;
        let mut changed = Vec::new();
        let totals = captured
            .epoch(&order, &mut |done| {
                let now = crate::weights::export(&varmap).unwrap();
                changed.push(now.tensors.iter().all(|(k, t)| t != &last.tensors[k]));
                last = now;
                steps_seen = done;
            })
            .unwrap();
        assert_eq!(steps_seen, 11);
        assert!(changed.iter().all(|&c| c), "epoch {epoch}: {changed:?}");
        assert_eq!(
            captured.state().adam.steps().unwrap(),
            11.0 * (epoch + 1) as f32
        );
        assert_eq!(totals.examples, n as u64);
        assert!(totals.loss_sum.is_finite() && totals.loss_sum > 0.0);
    }
    assert!(matches!(captured.replay(), Replay::Eager(_)));
}

/// Two epochs of the tuned step with `fault` in its replays: the captured step and the
/// weights it ends with.
fn two_epochs(fault: Option<Fault>) -> (Captured, common::weights::Weights) {
    let n = 32 * 10 + 5;
    let (mut captured, varmap) = tuned(n);
    captured.state.fault = fault;
    let order: Vec<u32> = (0..n as u32).rev().collect();
    for _ in 0..2 {
        captured.epoch(&order, &mut |_| {}).unwrap();
    }
    (captured, crate::weights::export(&varmap).unwrap())
}

/// A replay that does what the eager step does passes the self-check (on the CPU the step
/// after the warm-up stands for it), which the report then states.
#[test]
fn the_self_check_passes_a_correct_replay() {
    let (captured, _) = two_epochs(None);
    let check = captured.check().unwrap();
    assert!(
        check.starts_with(
            "its first replay (step 4) was checked against the eager step from the same \
             state: agreed within 0.00e0"
        ),
        "{check}"
    );
    assert!(matches!(captured.replay(), Replay::Eager(_)));
}

/// A replay that skips the update, or uses a stale step count, fails the self-check: the run
/// goes on from the eager step (its weights after two epochs are a clean run's, to the bit)
/// and the report says by how much the replay was off.
#[test]
fn the_self_check_catches_a_wrong_replay_and_the_run_goes_on_eagerly() {
    let (_, clean) = two_epochs(None);
    for (fault, expected) in [
        (Fault::SkipUpdate, "update off by 1.00e0"),
        (Fault::StaleCount, "update off by "),
    ] {
        let (captured, w) = two_epochs(Some(fault));
        let Replay::FellBack(why) = captured.replay() else {
            panic!("{fault:?}: {:?}", captured.replay());
        };
        assert!(
            why.starts_with("replay disagreed with the eager step: ") && why.contains(expected),
            "{fault:?}: {why}"
        );
        assert!(
            why.contains("(at step 4); the run went on eagerly"),
            "{why}"
        );
        assert_eq!(captured.check(), Some(why.as_str()));
        for (name, t) in &clean.tensors {
            assert_eq!(t, &w.tensors[name], "{fault:?}: {name}");
        }
    }
}

/// DeviceAdam makes the updates candle-nn's AdamW (weight decay 0) makes, step for step over
/// 200 steps of fixed gradients, within 1e-6 (on the CPU they agree to the bit); the step count
/// is on the device.
#[test]
fn device_adam_follows_candles_adamw_on_fixed_gradients() {
    let n = 64;
    let params = ParamsAdamW {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.1).cos()).collect();
    let start = Tensor::from_vec(start, n, &Device::Cpu).unwrap();
    let theirs = Var::from_tensor(&start).unwrap();
    let mine = Var::from_tensor(&start).unwrap();
    let mut candle_adam = AdamW::new(vec![theirs.clone()], params.clone()).unwrap();
    let mut ours = DeviceAdam::named(vec![("x".into(), mine.clone())], params).unwrap();
    for step in 0..200 {
        // The gradient of sum(x·g) is g: a backward pass per optimiser gives each its store.
        let g = gradient(step, n);
        let grads = |v: &Var| (v.as_tensor() * &g).unwrap().sum_all().unwrap().backward();
        candle_adam.step(&grads(&theirs).unwrap()).unwrap();
        ours.step(&grads(&mine).unwrap()).unwrap();
        let a = theirs.as_tensor().to_vec1::<f32>().unwrap();
        let b = mine.as_tensor().to_vec1::<f32>().unwrap();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6,
                "step {} element {i}: candle's AdamW {x}, device Adam {y}",
                step + 1
            );
        }
    }
    assert_eq!(ours.steps().unwrap(), 200.0);
}

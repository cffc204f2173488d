//! The captured step on the CPU: every replay advances the state, the self-check passes a correct
//! replay and catches a wrong one, a failed recording leaves the run eager, and the device-side
//! Adam is burn's.

use super::*;
use burn::optim::{AdamConfig, Optimizer};

/// Fixed gradients, the same for both optimisers: a sine pattern per step.
fn gradient(step: usize, n: usize, device: &Device) -> Tensor<1> {
    let values: Vec<f32> = (0..n)
        .map(|i| ((step * 31 + i * 7) as f32 * 0.37).sin() * 10f32.powi(-((i % 4) as i32)))
        .collect();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// A tuned step over synthetic data: LeNet2 with the shared initial weights, `n` random
/// images of ten classes, batches of 32.
fn tuned(n: usize) -> Captured {
    let device = Device::flex();
    let train_device = device.clone().autodiff();
    let model = common::spec::ModelKind::LeNet2;
    let weights = common::weights::Weights::init(&model.spec(), 3);
    let net = crate::weights::net_with(model, &weights, &train_device).unwrap();
    let side = common::mnist::IMAGE_SIDE;
    let pixels: Vec<f32> = (0..n * side * side)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let labels: Vec<i64> = (0..n).map(|i| (i * 7 % 10) as i64).collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [n, 1, side, side]), &train_device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &train_device);
    let loss = burn::nn::loss::CrossEntropyLossConfig::new().init(&train_device);
    let state = StepState::new(
        net,
        DeviceAdam::new(1e-3, &device),
        loss,
        images,
        labels,
        32,
        &device,
    );
    Captured::new(state, device, false, 1e-3)
}

fn weights(state: &StepState) -> common::weights::Weights {
    crate::weights::export(&state.net().unwrap().valid()).unwrap()
}

/// Every step of an epoch, whether a warm-up, a replay or the short last batch, advances the
/// device's step count by one and changes every parameter tensor: a replay on stale scalars
/// or stale buffers would leave one of them where it was.
#[test]
fn every_replay_advances_the_step_count_and_the_parameters() {
    let n = 32 * 10 + 5;
    let mut captured = tuned(n);
    let state = captured.state();
    let mut last = (0.0, weights(&state.borrow()));
    let order: Vec<u32> = (0..n as u32).rev().collect();
    for epoch in 0..2 {
        let mut seen = 0;
        let totals = captured
            .epoch(&order, &mut |done| {
                let state = state.borrow();
                let steps = state.adam.steps().unwrap();
                let now = weights(&state);
                // capture() runs the first 4 steps here (3 warm-up steps and the recording
                // run, which has no graph to record on the CPU) and reports them after.
                let expected = if epoch == 0 && done <= 4 {
                    4
                } else {
                    epoch * 11 + done
                };
                assert_eq!(steps, expected as f32, "epoch {epoch}, step {done}");
                if done > 4 || epoch > 0 {
                    assert_eq!(steps, last.0 + 1.0, "epoch {epoch}, step {done}");
                    for (name, t) in &now.tensors {
                        assert_ne!(
                            t, &last.1.tensors[name],
                            "{name} did not change at epoch {epoch}, step {done}"
                        );
                    }
                }
                last = (steps, now);
                seen = done;
            })
            .unwrap();
        assert_eq!(seen, 11);
        assert_eq!(totals.examples, n as u64);
        assert!(totals.loss_sum.is_finite() && totals.loss_sum > 0.0);
    }
    assert!(
        matches!(captured.replay(), Replay::Eager(_)),
        "{:?}",
        captured.replay()
    );
}

/// Two epochs of the tuned step with `fault` in its replays: the captured step and its weights.
fn two_epochs(fault: Option<Fault>) -> (Captured, common::weights::Weights) {
    let n = 32 * 10 + 5;
    let mut captured = tuned(n);
    captured.state().borrow_mut().fault = fault;
    let order: Vec<u32> = (0..n as u32).rev().collect();
    for _ in 0..2 {
        captured.epoch(&order, &mut |_| {}).unwrap();
    }
    let w = weights(&captured.state().borrow());
    (captured, w)
}

/// A replay that does what the eager step does passes the self-check, which the report then
/// states with the difference it found (none: on the CPU both run the same code).
#[test]
fn the_self_check_passes_a_correct_replay() {
    let (captured, _) = two_epochs(None);
    let check = captured.check().unwrap();
    assert!(
        check.starts_with(
            "its first replay (step 5) was checked against the eager step from the same \
             state: agreed within 0.00e0"
        ),
        "{check}"
    );
    assert!(matches!(captured.replay(), Replay::Eager(_)));
}

/// A replay that skips the update, or reads a stale step's bias corrections, fails the
/// self-check on its first replay: the run goes on eagerly from the eager step's state (its
/// weights after two epochs are those of a run without the fault, to the bit) and the report
/// says by how much the replay was off.
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
            why.contains("(at step 5); the run went on eagerly"),
            "{why}"
        );
        assert_eq!(captured.check(), Some(why.as_str()));
        for (name, t) in &clean.tensors {
            assert_eq!(t, &w.tensors[name], "{fault:?}: {name}");
        }
    }
}

/// A recording that fails on a device with graphs (here: Flex, told it has graphs, where
/// `capture` cannot record) leaves the run eager from the state saved before the recording:
/// the warm-up steps and the recording run are not counted, their batches run again, and the
/// run ends where a clean one does, to the bit, with every step counted once.
#[test]
fn a_failed_recording_leaves_the_run_eager_from_the_saved_state() {
    let (_, clean) = two_epochs(None);
    let n = 32 * 10 + 5;
    let mut captured = tuned(n);
    captured.graphs = true;
    let order: Vec<u32> = (0..n as u32).rev().collect();
    for epoch in 0..2 {
        let mut seen = Vec::new();
        captured.epoch(&order, &mut |done| seen.push(done)).unwrap();
        assert_eq!(seen, (1..=11).collect::<Vec<_>>(), "epoch {epoch}");
    }
    let Replay::Eager(why) = captured.replay() else {
        panic!("{:?}", captured.replay());
    };
    assert!(
        why.ends_with("; the run went on eagerly from the state saved before the recording"),
        "{why}"
    );
    assert!(captured.graph.is_none());
    assert_eq!(captured.state().borrow().adam.steps().unwrap(), 22.0);
    let w = weights(&captured.state().borrow());
    for (name, t) in &clean.tensors {
        assert_eq!(t, &w.tensors[name], "{name}");
    }
}

/// DeviceAdam makes the updates burn-optim's Adam makes, to the bit, step for step over 200
/// steps of fixed gradients of four magnitudes, planned as two epochs of 100 (the second
/// written into the first's tables in place): the same math with the bias corrections read
/// on the device at each step's slot.
#[test]
fn device_adam_is_burns_adam_on_fixed_gradients() {
    let device = Device::flex();
    let n = 64;
    let lr = 1e-3;
    let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.1).cos()).collect();
    let start = Tensor::<1>::from_data(TensorData::new(start, [n]), &device);
    let burn_adam = AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .build();
    let mut ours = DeviceAdam::new(lr, &device);
    let id = ParamId::new();
    let (mut theirs, mut state) = (start.clone(), None);
    let mut mine = start.clone();
    for step in 0..200 {
        let slot = step % 100;
        if slot == 0 {
            assert_eq!(ours.plan(100, &device), step > 0, "step {step}");
        }
        let g = gradient(step, n, &device);
        let (next, next_state) = burn_adam.step(lr, theirs, g.clone(), state);
        (theirs, state) = (next, next_state);
        let slot = Tensor::<1, Int>::from_data(TensorData::new(vec![slot as i64], [1]), &device);
        let c = ours.at(&slot).unwrap();
        ours.time.inplace(|t| t.add_scalar(1.0));
        mine = ours.update(id, mine, g, &c);
        assert_eq!(
            values(theirs.clone()),
            values(mine.clone()),
            "step {}: burn's Adam against the device Adam",
            step + 1
        );
    }
    assert_eq!(ours.steps().unwrap(), 200.0);
}

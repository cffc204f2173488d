//! Model specs, shared initial weights and batch orders.

use common::order::epoch_order;
use common::{ModelKind, Weights};

#[test]
fn parameter_counts_and_names() {
    let check = |model: ModelKind, count: usize, names: &[&str]| {
        let spec = model.spec();
        assert_eq!(spec.num_params(), count, "{model}");
        let got: Vec<String> = spec.params().into_iter().map(|p| p.name).collect();
        assert_eq!(got, names, "{model}");
        assert_eq!(Weights::init(&spec, 1).num_params(), count);
    };
    check(
        ModelKind::LeNet2,
        61_706,
        &[
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias",
        ],
    );
    check(
        ModelKind::LeNet3,
        121_994,
        &[
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "conv3.weight",
            "conv3.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
        ],
    );
}

#[test]
fn summaries_end_in_ten_classes() {
    for model in ModelKind::ALL {
        let rows = model.spec().summary().unwrap();
        assert_eq!(rows.last().unwrap().output, vec![10]);
    }
}

#[test]
fn weights_depend_on_the_seed_alone() {
    let spec = ModelKind::LeNet3.spec();
    assert_eq!(Weights::init(&spec, 7), Weights::init(&spec, 7));
    assert_ne!(Weights::init(&spec, 7), Weights::init(&spec, 8));
}

#[test]
fn weights_follow_pytorchs_bounds() {
    let spec = ModelKind::LeNet2.spec();
    let w = Weights::init(&spec, 3);
    for p in spec.params() {
        let t = &w.tensors[&p.name];
        let bound = 1.0 / (p.fan_in as f32).sqrt();
        let max = t.data.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max <= bound, "{}: {max} > {bound}", p.name);
        // Uniform in ±bound: the largest magnitude of many draws comes close to the bound.
        if t.data.len() > 100 {
            assert!(max > 0.95 * bound, "{}: {max} far below {bound}", p.name);
            // The mean of n uniform draws has standard deviation bound / √(3n); allow 4 of them.
            let n = t.data.len() as f32;
            let mean: f32 = t.data.iter().sum::<f32>() / n;
            let sd = bound / (3.0 * n).sqrt();
            assert!(mean.abs() < 4.0 * sd, "{}: mean {mean}, sd {sd}", p.name);
        }
    }
}

#[test]
fn orders_are_seeded_permutations() {
    let a = epoch_order(5, 1, 1000);
    assert_eq!(a, epoch_order(5, 1, 1000));
    assert_ne!(a, epoch_order(5, 2, 1000), "each epoch has its own order");
    assert_ne!(a, epoch_order(6, 1, 1000), "each seed has its own order");
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    assert_ne!(a, sorted, "shuffled");
}

#[test]
fn reference_forward_gives_ten_logits() {
    let spec = ModelKind::LeNet2.spec();
    let w = Weights::init(&spec, 0);
    let logits = common::reference::forward(&spec, &w, &vec![0.5; 2 * 784]).unwrap();
    assert_eq!(logits.len(), 20);
    assert_eq!(logits[..10], logits[10..], "same image, same logits");
}

//! What candle's `max_pool2d` backward pass does, pinned, because the comparison depends on it:
//! PyTorch sends a window's gradient to its first maximum; candle 0.11.1 sends 1/4 of it to a single
//! maximum and k/4 of it to each of k tied maxima. If a candle release changes this, this test says
//! so, and idiomatic candle can then be held to step-for-step parity with tch.

use candle_core::{Device, Tensor, Var};

/// Gradient of `sum(pool(x))` for one channel of two 2×2 windows: one with a single maximum
/// (1, 2, 3, 4), one with four tied maxima (5, 5, 5, 5).
fn pool_gradient(pool: impl Fn(&Tensor) -> candle_core::Result<Tensor>) -> Vec<f32> {
    let x = Var::from_vec(
        vec![1f32, 2., 5., 5., 3., 4., 5., 5.],
        (1, 1, 2, 4),
        &Device::Cpu,
    )
    .unwrap();
    let y = pool(x.as_tensor()).unwrap().sum_all().unwrap();
    let grads = y.backward().unwrap();
    grads
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn max_pool2d_backward_is_not_pytorchs() {
    let got = pool_gradient(|x| x.max_pool2d(2));
    // Row-major [1, 2, 5, 5 / 3, 4, 5, 5]: PyTorch would give [0, 0, 1, 0 / 0, 1, 0, 0].
    assert_eq!(got, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.25, 1.0, 1.0]);
}

#[test]
fn first_max_pooling_routes_gradients_as_pytorch() {
    let got = pool_gradient(candle_impl::first_max_pool);
    assert_eq!(got, vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
}

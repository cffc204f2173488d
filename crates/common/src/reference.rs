//! A plain-Rust forward pass, straight from the layer table: slow, obvious, and the yardstick that
//! every framework's logits are tested against.

use crate::error::TrainError;
use crate::mnist::IMAGE_SIDE;
use crate::spec::{Layer, ModelSpec};
use crate::weights::Weights;

/// Logits `[n, 10]` (row-major) for `n` normalised images of 28×28.
pub fn forward(
    spec: &ModelSpec,
    weights: &Weights,
    images: &[f32],
) -> Result<Vec<f32>, TrainError> {
    let pixels = IMAGE_SIDE * IMAGE_SIDE;
    let mut out = Vec::new();
    for image in images.chunks(pixels) {
        // One example at a time: shape [c, h, w] or [features].
        let mut shape = vec![1, IMAGE_SIDE, IMAGE_SIDE];
        let mut x = image.to_vec();
        for layer in &spec.layers {
            (x, shape) = apply(layer, weights, x, &shape)?;
        }
        out.extend(x);
    }
    Ok(out)
}

fn apply(
    layer: &Layer,
    weights: &Weights,
    x: Vec<f32>,
    shape: &[usize],
) -> Result<(Vec<f32>, Vec<usize>), TrainError> {
    Ok(match *layer {
        Layer::Conv2d {
            name,
            in_channels,
            out_channels,
            kernel,
            padding,
        } => {
            let wt = &weights
                .get(
                    &format!("{name}.weight"),
                    &[out_channels, in_channels, kernel, kernel],
                )?
                .data;
            let b = &weights.get(&format!("{name}.bias"), &[out_channels])?.data;
            conv2d(&x, shape, wt, b, kernel, padding)
        }
        Layer::Relu => (x.into_iter().map(|v| v.max(0.0)).collect(), shape.to_vec()),
        Layer::MaxPool2 => max_pool2(&x, shape),
        Layer::Flatten => {
            let n = x.len();
            (x, vec![n])
        }
        Layer::Linear {
            name,
            inputs,
            outputs,
        } => {
            let wt = &weights
                .get(&format!("{name}.weight"), &[outputs, inputs])?
                .data;
            let b = &weights.get(&format!("{name}.bias"), &[outputs])?.data;
            let y = (0..outputs)
                .map(|o| {
                    let dot: f64 = (0..inputs)
                        .map(|i| wt[o * inputs + i] as f64 * x[i] as f64)
                        .sum();
                    (dot + b[o] as f64) as f32
                })
                .collect();
            (y, vec![outputs])
        }
    })
}

/// A convolution of `x` (`[cin, h, w]`) with `wt` (`[cout, cin, k, k]`) and bias `b`, stride 1,
/// zero padding `p`, summed in f64.
fn conv2d(
    x: &[f32],
    shape: &[usize],
    wt: &[f32],
    b: &[f32],
    k: usize,
    p: usize,
) -> (Vec<f32>, Vec<usize>) {
    let (cin, h, w) = (shape[0], shape[1], shape[2]);
    let cout = b.len();
    let (oh, ow) = (h + 2 * p + 1 - k, w + 2 * p + 1 - k);
    let mut y = vec![0f32; cout * oh * ow];
    for o in 0..cout {
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = b[o] as f64;
                for c in 0..cin {
                    for u in 0..k {
                        for v in 0..k {
                            let (r, s) =
                                ((i + u) as isize - p as isize, (j + v) as isize - p as isize);
                            if r < 0 || s < 0 || r >= h as isize || s >= w as isize {
                                continue;
                            }
                            acc += wt[((o * cin + c) * k + u) * k + v] as f64
                                * x[(c * h + r as usize) * w + s as usize] as f64;
                        }
                    }
                }
                y[(o * oh + i) * ow + j] = acc as f32;
            }
        }
    }
    (y, vec![cout, oh, ow])
}

/// A 2x2 max-pool of `x` (`[c, h, w]`), stride 2.
fn max_pool2(x: &[f32], shape: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let (oh, ow) = (h / 2, w / 2);
    let mut y = vec![0f32; c * oh * ow];
    for ch in 0..c {
        for i in 0..oh {
            for j in 0..ow {
                let at = |u: usize, v: usize| x[(ch * h + 2 * i + u) * w + 2 * j + v];
                y[(ch * oh + i) * ow + j] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    (y, vec![c, oh, ow])
}

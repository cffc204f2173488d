//! Serving a trained model: the [`Predictor`] a framework gives for a model's weights on a device,
//! and what is measured of it, framework-free: the latency of single-image predictions
//! ([`latencies`], summed up by [`Latency`]), the throughput of large batches ([`throughput`]), and
//! the predicted classes ([`classes`]) that every row's answers are compared by.
//!
//! A prediction is what a server does for a request: the images go from the host to the model's
//! device, the forward pass runs without gradients, and the logits come back to the host. Its time
//! is taken around the whole call, so a framework that returns before its device has finished is
//! timed to the end of the copy back, which waits for it.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::harness::DeviceKind;
use crate::mnist::IMAGE_SIDE;

/// The pixels of one image.
pub const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// The classes a model tells apart (its logits per image).
pub const CLASSES: usize = 10;

/// A model ready to answer: its weights loaded on its device, in inference mode.
pub trait Predictor {
    /// Logits `[n, 10]` for `images` (`n` images of 28×28, normalised as in training), on the
    /// host.
    fn logits(&mut self, images: &[f32]) -> Result<Vec<f32>, TrainError>;

    /// Where it predicts.
    fn device(&self) -> DeviceKind;

    /// What answers: the framework and its version, as a training report names them.
    fn version(&self) -> String;

    /// What a reader of its numbers should know beyond its version (what file it serves, from
    /// where); none by default.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Each image's predicted class: the index of its largest logit (the first, on a tie).
pub fn classes(logits: &[f32]) -> Vec<u8> {
    logits
        .chunks(CLASSES)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u8
        })
        .collect()
}

/// The images of `pixels` (whole images, [`PIXELS`] values each), or an error that it holds none
/// or a part of one.
pub fn image_count(pixels: &[f32]) -> Result<usize, TrainError> {
    let n = pixels.len() / PIXELS;
    if n == 0 || pixels.len() % PIXELS != 0 {
        return Err(TrainError::Input(format!(
            "a prediction takes whole images of {PIXELS} values, not {} values",
            pixels.len()
        )));
    }
    Ok(n)
}

/// The seconds of each of `n` single-image predictions, after `warmup` untimed ones, over the
/// images of `pixels` in turn (again from the first when they run out), in the order taken.
pub fn latencies(
    predictor: &mut dyn Predictor,
    pixels: &[f32],
    warmup: usize,
    n: usize,
) -> Result<Vec<f64>, TrainError> {
    let images = image_count(pixels)?;
    let image = |i: usize| &pixels[(i % images) * PIXELS..(i % images + 1) * PIXELS];
    for i in 0..warmup {
        predictor.logits(image(i))?;
    }
    let mut seconds = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let logits = predictor.logits(image(warmup + i))?;
        seconds.push(start.elapsed().as_secs_f64());
        std::hint::black_box(logits);
    }
    Ok(seconds)
}

/// A summary of single-image prediction times, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// The predictions timed.
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Latency {
    /// The summary of `seconds` (none: `None`). Percentiles are nearest-rank: the p99 of 1,000
    /// predictions is the 990th fastest.
    pub fn of(seconds: &[f64]) -> Option<Latency> {
        if seconds.is_empty() {
            return None;
        }
        let mut sorted = seconds.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let at = (p * sorted.len() as f64).ceil() as usize;
            sorted[at.clamp(1, sorted.len()) - 1]
        };
        Some(Latency {
            count: sorted.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The throughput at one batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    pub batch: usize,
    /// Batches timed (after one untimed).
    pub batches: usize,
    pub seconds: f64,
    pub images_per_second: f64,
}

/// Predictions of `batch` images at a time (the first `batch` of `pixels`, repeated where it holds
/// fewer), one untimed, then timed until at least `min_batches` have run and `min_seconds` have
/// passed.
pub fn throughput(
    predictor: &mut dyn Predictor,
    pixels: &[f32],
    batch: usize,
    min_batches: usize,
    min_seconds: f64,
) -> Result<Throughput, TrainError> {
    if batch == 0 {
        return Err(TrainError::Input(
            "a batch holds at least one image, not 0".into(),
        ));
    }
    let images = image_count(pixels)?;
    let input: Vec<f32> = if images >= batch {
        pixels[..batch * PIXELS].to_vec()
    } else {
        (0..batch)
            .flat_map(|i| {
                pixels[(i % images) * PIXELS..(i % images + 1) * PIXELS]
                    .iter()
                    .copied()
            })
            .collect()
    };
    predictor.logits(&input)?;
    let start = Instant::now();
    let mut batches = 0;
    while batches < min_batches.max(1) || start.elapsed().as_secs_f64() < min_seconds {
        std::hint::black_box(predictor.logits(&input)?);
        batches += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Throughput {
        batch,
        batches,
        seconds,
        images_per_second: (batches * batch) as f64 / seconds,
    })
}

/// The predicted classes of all of `pixels`, `batch` images at a time.
pub fn predict_all(
    predictor: &mut dyn Predictor,
    pixels: &[f32],
    batch: usize,
) -> Result<Vec<u8>, TrainError> {
    image_count(pixels)?;
    let mut out = Vec::with_capacity(pixels.len() / PIXELS);
    for chunk in pixels.chunks(batch.max(1) * PIXELS) {
        out.extend(classes(&predictor.logits(chunk)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A predictor whose logits name each image's first pixel as its class.
    struct FirstPixel;

    impl Predictor for FirstPixel {
        fn logits(&mut self, images: &[f32]) -> Result<Vec<f32>, TrainError> {
            Ok(images
                .chunks(PIXELS)
                .flat_map(|image| {
                    (0..CLASSES).map(move |c| if c == image[0] as usize { 1.0 } else { 0.0 })
                })
                .collect())
        }

        fn device(&self) -> DeviceKind {
            DeviceKind::Cpu
        }

        fn version(&self) -> String {
            "first-pixel 1".into()
        }
    }

    fn images(first: &[u8]) -> Vec<f32> {
        first
            .iter()
            .flat_map(|&c| std::iter::once(c as f32).chain(std::iter::repeat_n(0.0, PIXELS - 1)))
            .collect()
    }

    /// The class is the largest logit's index, the first on a tie.
    #[test]
    fn classes_are_the_largest_logits() {
        let logits = [
            [0.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
            [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0, -0.5],
        ]
        .concat();
        assert_eq!(classes(&logits), [1, 0, 9]);
    }

    /// Nearest-rank percentiles: of 1..=100 ms, p50 is 50 and p99 is 99.
    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let seconds: Vec<f64> = (1..=100).rev().map(|ms| ms as f64 / 1000.0).collect();
        let l = Latency::of(&seconds).unwrap();
        assert_eq!((l.count, l.p50, l.p99), (100, 0.050, 0.099));
        assert_eq!((l.min, l.max), (0.001, 0.100));
        assert!((l.mean - 0.0505).abs() < 1e-12);
        let one = Latency::of(&[0.2]).unwrap();
        assert_eq!((one.p50, one.p99), (0.2, 0.2));
        assert_eq!(Latency::of(&[]), None);
    }

    /// Every prediction is over whole images; all of them are predicted in batches, the last one
    /// short; a batch larger than the images repeats them; a batch of 0 is refused.
    #[test]
    fn predictions_cover_whole_images() {
        let pixels = images(&[3, 1, 4, 1, 5]);
        assert_eq!(
            predict_all(&mut FirstPixel, &pixels, 2).unwrap(),
            [3, 1, 4, 1, 5]
        );
        let taken = latencies(&mut FirstPixel, &pixels, 3, 7).unwrap();
        assert_eq!(taken.len(), 7);
        let t = throughput(&mut FirstPixel, &pixels, 8, 2, 0.0).unwrap();
        assert_eq!((t.batch, t.batches), (8, 2));
        assert!(t.images_per_second > 0.0);
        assert!(throughput(&mut FirstPixel, &pixels, 0, 1, 0.0).is_err());
        let e = latencies(&mut FirstPixel, &pixels[..PIXELS + 1], 0, 1).unwrap_err();
        assert!(e.to_string().contains("whole images"), "{e}");
        assert!(predict_all(&mut FirstPixel, &[], 4).is_err());
    }
}

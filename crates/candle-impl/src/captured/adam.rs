//! candle-nn's AdamW arithmetic for the captured step, with its step count on the device.

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use candle_nn::ParamsAdamW;

/// candle-nn's AdamW (here with weight decay 0: Adam) with its step count on the device: per
/// parameter `θ - lr·m̂/(√v̂ + ε)` with `m̂ = m/(1-β₁ᵗ)` and `v̂ = v/(1-β₂ᵗ)`, as candle-nn computes
/// it, but with `1/(1-βᵗ)` computed by tensor operations from a step count that is a device
/// variable. Moments and parameters are written back into their own buffers.
pub struct DeviceAdam {
    pub(super) params: ParamsAdamW,
    /// Steps taken, an f64 scalar on the device: the corrections are computed in f64, as
    /// candle-nn computes them on the host (in f32, cancellation would put `1-β₂ᵗ` off by up to
    /// 6e-5 of itself in the first steps).
    pub(super) time: Var,
    /// Each parameter with its first and second moments, and its name.
    pub(super) vars: Vec<(Var, Var, Var)>,
    pub(super) names: Vec<String>,
}

impl DeviceAdam {
    /// Adam over `vars`, each with its name (what the self-check's report calls it), with
    /// `params`; weight decay must be 0 (the recipe's plain Adam).
    pub fn named(vars: Vec<(String, Var)>, params: ParamsAdamW) -> candle_core::Result<Self> {
        if params.weight_decay != 0.0 {
            candle_core::bail!("the device-side Adam has no weight decay");
        }
        let device = vars
            .first()
            .map_or(Device::Cpu, |(_, v)| v.as_tensor().device().clone());
        let (names, vars): (Vec<String>, Vec<Var>) = vars
            .into_iter()
            .filter(|(_, var)| var.dtype().is_float())
            .unzip();
        let vars = vars
            .into_iter()
            .map(|var| {
                let zeros = || Var::zeros(var.shape(), var.dtype(), var.device());
                let (m, v) = (zeros()?, zeros()?);
                Ok((var, m, v))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            params,
            time: Var::zeros((), DType::F64, &device)?,
            vars,
            names,
        })
    }

    /// One step with `grads`, every parameter and moment written in place.
    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.time.set(&(self.time.as_tensor() + 1.0)?)?;
        let ParamsAdamW {
            lr,
            beta1,
            beta2,
            eps,
            ..
        } = self.params;
        // 1/(1-βᵗ) in f64, with βᵗ = exp(t·ln β) from the device's step count, then in f32 as
        // candle's kernels take the host's f64 scale.
        let scale = |beta: f64| -> candle_core::Result<Tensor> {
            (self.time.as_tensor() * beta.ln())?
                .exp()?
                .affine(-1.0, 1.0)?
                .recip()?
                .to_dtype(DType::F32)
        };
        let (scale_m, scale_v) = (scale(beta1)?, scale(beta2)?);
        for (theta, m, v) in &self.vars {
            let Some(g) = grads.get(theta) else {
                continue;
            };
            let next_m = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = next_m.broadcast_mul(&scale_m)?;
            let v_hat = next_v.broadcast_mul(&scale_v)?;
            let adjusted = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let next_theta = (theta.as_tensor() - (adjusted * lr)?)?;
            m.set(&next_m)?;
            v.set(&next_v)?;
            theta.set(&next_theta)?;
        }
        Ok(())
    }

    /// The steps taken, read back from the device.
    pub fn steps(&self) -> candle_core::Result<f32> {
        Ok(self.time.as_tensor().to_scalar::<f64>()? as f32)
    }
}

/// The recipe's Adam as candle's AdamW parameters.
pub(crate) fn adam_params(learning_rate: f64) -> ParamsAdamW {
    ParamsAdamW {
        lr: learning_rate,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    }
}

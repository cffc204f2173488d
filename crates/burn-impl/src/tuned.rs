//! The tuned profile's settings for burn and what a run's report says of them: the device-side Adam
//! and the CUDA graph of the captured step (`captured.rs`), the compiled CPU backend and Flex's
//! rayon, each a cargo feature chosen when the binary is built.

use common::capture::{GraphWords, Replay};
use common::harness::Tuning;

/// The tuned step's settings.
const DEVICE_ADAM: &str = "device-side Adam";

/// The compiled CPU backend's setting.
const COMPILED_CPU: &str = "compiled CPU backend";
const COMPILED_CPU_VALUE: &str = "cubecl CPU (LLVM), fusion, autotune";

/// The tuned profile's settings on the CPU or CUDA, and whether this build has them: burn's
/// settings are cargo features, chosen when the binary is built. On the CPU, the compiled backend
/// (the `cpu` feature) replaces Flex, and Flex's rayon setting then does not apply.
pub(crate) fn tune(cuda: bool) -> Vec<Tuning> {
    let mut tuning = vec![Tuning::applied(
        DEVICE_ADAM,
        "step count and bias corrections on the device",
        "burn-optim's Adam arithmetic (eps 1e-8) with its step count on the device and each \
         step's bias corrections (computed on the host as burn-optim computes them, one table \
         per epoch) read on the device at the step's slot, moments and parameters updated in \
         place: nothing in a step is a host value that changes from step to step",
    )];
    tuning.extend(tune_backend(cuda));
    tuning
}

/// The backend's part of the tuned profile (the CUDA graph's entry is added once it is known).
fn tune_backend(cuda: bool) -> Vec<Tuning> {
    const RAYON: &str = "Flex rayon kernels";
    if cuda {
        return vec![
            Tuning::fell_back(
                RAYON,
                "on",
                "the run is on CUDA: rayon is Flex's (CPU) parallelism",
            ),
            Tuning::fell_back(
                COMPILED_CPU,
                COMPILED_CPU_VALUE,
                "the run is on CUDA: the compiled backend is burn's CPU one",
            ),
        ];
    }
    if cfg!(feature = "cpu") {
        return vec![
            Tuning::applied(
                COMPILED_CPU,
                COMPILED_CPU_VALUE,
                "burn's cubecl CPU runtime instead of Flex: kernels compiled with LLVM for this \
                 CPU, element-wise operations fused, kernel variants autotuned on first use",
            ),
            Tuning::fell_back(
                RAYON,
                "on",
                "the compiled backend replaces Flex, whose parallelism rayon is",
            ),
        ];
    }
    let compiled = Tuning::fell_back(
        COMPILED_CPU,
        COMPILED_CPU_VALUE,
        "this binary is built without it (cargo xtask build --features burn-cpu)",
    );
    let mut tuning = vec![compiled];
    tuning.extend(rayon_tuning(RAYON));
    tuning
}

/// The CUDA graph entry's words.
const GRAPH_WORDS: GraphWords = GraphWords {
    value: "whole step (burn::tensor::capture)",
    recorded: "gather, forward, loss, backward, device-side Adam and the epoch's sums of a full \
               batch recorded once (after 3 warm-up steps) on the plain CUDA device under \
               autodiff and replayed; a shorter last batch runs eagerly",
};

/// The CUDA graph's entry: how the tuned step's full batches ran, and what the self-check of its
/// first replay found (`check`). On the CPU, where burn records no graph, the step ran eagerly
/// whatever the recording said; on CUDA, an eager run is one whose recording failed.
pub(crate) fn graph_tuning(cuda: bool, replay: &Replay, check: Option<&str>) -> Tuning {
    let replay = match replay {
        Replay::Graph | Replay::FellBack(_) => replay.clone(),
        _ if !cuda => Replay::Eager(
            "the run is on the CPU: no CUDA graphs there (the same step runs eagerly)".into(),
        ),
        Replay::Eager(why) => Replay::Eager(format!(
            "burn could not record the step ({why}); it ran eagerly"
        )),
        Replay::Pending => Replay::Pending,
    };
    common::capture::graph_tuning(&GRAPH_WORDS, &replay, check)
}

/// Flex's rayon setting on the CPU.
fn rayon_tuning(name: &str) -> Vec<Tuning> {
    if cfg!(feature = "rayon") {
        vec![Tuning::applied(
            name,
            "on",
            "Flex's convolutions, matrix products and large element-wise loops run on rayon's pool",
        )]
    } else {
        vec![Tuning::fell_back(
            name,
            "on",
            "this binary is built without it (cargo build --release --features burn-rayon)",
        )]
    }
}

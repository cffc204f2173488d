//! The trained model exported to ONNX (by `python/serve.py --export`, the PyTorch row's
//! `torch.onnx.export`), served from Rust by ONNX Runtime through the `ort` crate: the row `ort`
//! of `lenet serve`, what a Rust server of an exported model runs. ONNX Runtime's library is
//! loaded when the row starts, from `ORT_DYLIB_PATH` (the `libonnxruntime.so` that the
//! `onnxruntime` Python package ships, which `cargo xtask serve` finds), so the build downloads
//! and links nothing. The session is ONNX Runtime's defaults (every graph optimisation) with the
//! threads asked for; each prediction copies the images into a new input tensor and the logits out,
//! as the other rows' predictions do.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::harness::DeviceKind;
use common::serve::{image_count, Predictor, CLASSES};
use common::TrainError;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

/// The row's name.
pub const ROW: &str = "ort";
/// The variable that names ONNX Runtime's library.
pub const LIBRARY_VARIABLE: &str = "ORT_DYLIB_PATH";
/// The crate, as a report names it.
const CRATE: &str = "ort 2.0.0-rc.15";

fn backend(message: impl std::fmt::Display) -> TrainError {
    TrainError::Backend {
        framework: ROW,
        message: message.to_string(),
    }
}

/// The exported model served by an ONNX Runtime session.
pub struct OrtPredictor {
    session: Session,
    version: String,
    notes: Vec<String>,
}

/// ONNX Runtime's environment: one per process (ONNX Runtime's rule), made with the first
/// predictor from its library and kept for the next ones.
fn environment(library: &Path) -> Result<&'static Environment, TrainError> {
    static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
    if let Some(environment) = ENVIRONMENT.get() {
        return Ok(environment);
    }
    let made = ort::init_from(library)
        .map_err(|e| backend(format!("cannot load {}: {e}", library.display())))?
        .with_name("lenet-compare")
        .build()
        .map_err(backend)?;
    Ok(ENVIRONMENT.get_or_init(|| made))
}

/// The library `ORT_DYLIB_PATH` names, or an error that says how to name one.
pub fn library() -> Result<PathBuf, TrainError> {
    match std::env::var_os(LIBRARY_VARIABLE).filter(|v| !v.is_empty()) {
        Some(path) => Ok(PathBuf::from(path)),
        None => Err(TrainError::DeviceUnavailable(format!(
            "{ROW}: set {LIBRARY_VARIABLE} to ONNX Runtime's library (the onnxruntime Python \
             package ships one: onnxruntime/capi/libonnxruntime.so.*; cargo xtask serve finds it)"
        ))),
    }
}

/// The model exported to `onnx`, served by a session of the ONNX Runtime at `library` on the CPU
/// with `threads` threads for its operators (`None`: ONNX Runtime's default). The process's first
/// predictor loads the library; the later ones share it.
pub fn predictor(
    onnx: &Path,
    library: &Path,
    threads: Option<usize>,
) -> Result<OrtPredictor, TrainError> {
    if !onnx.is_file() {
        return Err(TrainError::Input(format!(
            "{ROW}: no exported model at {} (python3 python/serve.py --export --load MODEL writes \
             it beside the model file)",
            onnx.display()
        )));
    }
    if !library.is_file() {
        return Err(TrainError::DeviceUnavailable(format!(
            "{ROW}: no ONNX Runtime library at {} ({LIBRARY_VARIABLE})",
            library.display()
        )));
    }
    let environment = environment(library)?;
    let mut builder = Session::builder(environment).map_err(backend)?;
    if let Some(n) = threads {
        builder = builder.with_intra_threads(n).map_err(backend)?;
        builder = builder.with_inter_threads(1).map_err(backend)?;
    }
    let session = builder
        .commit_from_file(onnx)
        .map_err(|e| backend(format!("cannot load {}: {e}", onnx.display())))?;
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let library_name = name(library);
    // The library's own version is in its file name (libonnxruntime.so.1.32.0).
    let build = library_name
        .split_once(".so.")
        .map_or("of unknown version", |(_, v)| v);
    Ok(OrtPredictor {
        session,
        version: format!("{CRATE}, onnxruntime {build}"),
        notes: vec![format!(
            "serves {}, exported from the model file by python/serve.py --export \
             (torch.onnx.export), with ONNX Runtime's {library_name} (the onnxruntime Python \
             package's) loaded by the ort crate; the load is the session's",
            name(onnx)
        )],
    })
}

impl Predictor for OrtPredictor {
    fn logits(&mut self, images: &[f32]) -> Result<Vec<f32>, TrainError> {
        let n = image_count(images)?;
        let input =
            Tensor::<f32>::from_array(([n, 1usize, 28, 28], images.to_vec())).map_err(backend)?;
        let outputs = self
            .session
            .run(ort::inputs!["images" => input])
            .map_err(backend)?;
        let (_, logits) = outputs["logits"]
            .try_extract_tensor::<f32>()
            .map_err(backend)?;
        if logits.len() != n * CLASSES {
            return Err(backend(format!(
                "the model answered {} values for {n} images",
                logits.len()
            )));
        }
        Ok(logits.to_vec())
    }

    fn device(&self) -> DeviceKind {
        DeviceKind::Cpu
    }

    fn version(&self) -> String {
        self.version.clone()
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

//! An AOTInductor package (`.pt2`, from `torch._inductor.aoti_compile_and_package`) loaded
//! into this process: libtorch's `AOTIModelPackageLoader`, through a small C++ shim
//! (`shim.cpp`, built by the engine's build script against the libtorch tch links), since
//! tch has no binding for it. One [`Pt2`] is one compiled graph of a package (`reset`,
//! `step`...): a package made by `torch._inductor.package.package_aoti` holds several.
//!
//! Every graph is compiled for fixed input shapes; AOTInductor checks each input's dtype,
//! shape, strides and device only when `AOTI_RUNTIME_CHECK_INPUTS` is set (without the
//! check a wrong shape is read out of bounds), so the shim sets it before the first load.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

use tch::{Device, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn cuecast_aoti_load(
        path: *const c_char,
        model: *const c_char,
        device_index: c_int,
        err: *mut c_char,
        err_len: usize,
    ) -> *mut c_void;
    fn cuecast_aoti_free(loader: *mut c_void);
    fn cuecast_aoti_metadata(loader: *mut c_void, out: *mut c_char, len: usize) -> usize;
    fn cuecast_aoti_run(
        loader: *mut c_void,
        inputs: *const *mut C_tensor,
        n_in: usize,
        outputs: *mut *mut C_tensor,
        max_out: usize,
        n_out: *mut usize,
        err: *mut c_char,
        err_len: usize,
    ) -> bool;
}

/// The most outputs a graph may return (a model's frames, depth and state tensors).
pub const MAX_OUTPUTS: usize = 256;
const ERR_LEN: usize = 4096;

/// One compiled graph of a `.pt2` package.
pub struct Pt2 {
    loader: *mut c_void,
    metadata: BTreeMap<String, String>,
}

// The loader is used from one thread at a time (it is moved to the thread that runs the
// model); libtorch's runner is itself safe to call from any thread.
unsafe impl Send for Pt2 {}

fn text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Pt2 {
    /// Loads graph `model` of the package at `path`, for `device` (the package must have
    /// been compiled for that kind of device).
    pub fn load(path: &Path, model: &str, device: Device) -> Result<Pt2, String> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| "the path has a NUL byte".to_owned())?;
        let c_model = CString::new(model).map_err(|_| "the graph name has a NUL byte")?;
        let index = match device {
            Device::Cuda(i) => i as c_int,
            _ => -1,
        };
        let mut err = vec![0u8; ERR_LEN];
        let loader = unsafe {
            cuecast_aoti_load(
                c_path.as_ptr(),
                c_model.as_ptr(),
                index,
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if loader.is_null() {
            return Err(text(&err));
        }
        let mut buf = vec![0u8; 64 << 10];
        let n = unsafe { cuecast_aoti_metadata(loader, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= buf.len() {
            buf = vec![0u8; n + 1];
            unsafe { cuecast_aoti_metadata(loader, buf.as_mut_ptr().cast(), buf.len()) };
        }
        let metadata = text(&buf)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Pt2 { loader, metadata })
    }

    /// What the package says of itself: `AOTI_DEVICE_KEY` (`cpu`, `cuda`), `AOTI_CPU_ISA`,
    /// and what its maker added (`aot_inductor.metadata`).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Runs the graph. Its errors are libtorch's, first line first.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        let ptrs: Vec<*mut C_tensor> = inputs.iter().map(|t| t.as_ptr() as *mut _).collect();
        let mut outs: Vec<*mut C_tensor> = vec![std::ptr::null_mut(); MAX_OUTPUTS];
        let mut n_out = 0usize;
        let mut err = vec![0u8; ERR_LEN];
        let ok = unsafe {
            cuecast_aoti_run(
                self.loader,
                ptrs.as_ptr(),
                ptrs.len(),
                outs.as_mut_ptr(),
                MAX_OUTPUTS,
                &mut n_out,
                err.as_mut_ptr().cast(),
                ERR_LEN,
            )
        };
        if !ok {
            return Err(text(&err));
        }
        if n_out > MAX_OUTPUTS {
            return Err(format!(
                "it returned {n_out} tensors, more than the {MAX_OUTPUTS} cuecast takes"
            ));
        }
        // Each pointer is a new `at::Tensor` the shim allocated for us: tch frees it.
        Ok(outs[..n_out]
            .iter()
            .map(|&p| unsafe { Tensor::from_ptr(p) })
            .collect())
    }
}

impl Drop for Pt2 {
    fn drop(&mut self) {
        unsafe { cuecast_aoti_free(self.loader) }
    }
}

/// The instruction sets a CPU package was compiled for (`AOTI_CPU_ISA`, such as `AVX512
/// AVX512_VNNI`) that this CPU lacks: code built for them would stop on an illegal
/// instruction.
pub fn missing_cpu_features(isa: &str) -> Vec<String> {
    isa.split_whitespace()
        .filter(|f| !has_feature(f))
        .map(str::to_owned)
        .collect()
}

#[cfg(target_arch = "x86_64")]
fn has_feature(name: &str) -> bool {
    match name.to_ascii_uppercase().as_str() {
        "AVX2" => std::arch::is_x86_feature_detected!("avx2"),
        "AVX512" => {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
        }
        "AVX512_VNNI" => std::arch::is_x86_feature_detected!("avx512vnni"),
        "AVX512_BF16" => std::arch::is_x86_feature_detected!("avx512bf16"),
        "AVX512_FP16" => std::arch::is_x86_feature_detected!("avx512fp16"),
        // What this cuecast cannot test for is left to libtorch.
        _ => true,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn has_feature(_: &str) -> bool {
    true
}

//! The device each backend runs on, found before burn initialises it. burn's GPU backends
//! panic deep inside cubecl when there is none (no Vulkan adapter; no `libcuda` or NVRTC);
//! [`open`] looks first, the way cubecl will, and says which device a run will use or, in an
//! error naming the backend, what is missing and how to provide it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::error::{DataError, Result};

/// The device `backend` will run on, described for logs and records (`llvmpipe (LLVM 15.0.6),
/// Vulkan, Mesa 22.3.6`); an error names the backend and what is missing. Each backend is
/// looked at once per process.
pub fn open(backend: &str) -> Result<String> {
    static OPENED: Mutex<BTreeMap<String, Result<String, String>>> = Mutex::new(BTreeMap::new());
    let mut opened = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let found = opened
        .entry(backend.to_owned())
        .or_insert_with(|| find(backend))
        .clone();
    found.map_err(|message| DataError::Device {
        backend: backend.to_owned(),
        message,
    })
}

fn find(backend: &str) -> Result<String, String> {
    match backend {
        #[cfg(feature = "wgpu")]
        "wgpu" => wgpu_adapter::find(),
        #[cfg(feature = "cuda")]
        "cuda" => cuda_driver::find(),
        _ => Ok(cpu_model()),
    }
}

/// Makes the GPU backends keep their autotuning results (which kernel is fastest for each
/// operation and shape) in `dir` instead of cubecl's default place, which depends on the
/// working directory (`target/` of an enclosing Cargo project, else `~/.cache/cubecl`). Kernels
/// that sum in another order round differently, so a resumed run is bit-identical to an
/// uninterrupted one only if it runs the kernels its interrupted run chose: kept in the cache,
/// they are, whatever the working directory or node. The first call in a process decides (the
/// configuration is process-wide); the user's own cubecl configuration (`cubecl.toml`,
/// `burn.toml`), if it names another place, wins.
pub fn keep_tuning_in(dir: &Path) {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        use cubecl_runtime::config::cache::CacheConfig;
        use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if CubeClRuntimeConfig::storage().lock().is_some() {
                return; // cubecl already read its configuration in this process
            }
            let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
            if matches!(config.autotune.cache, CacheConfig::Target) {
                config.autotune.cache = CacheConfig::File(dir.to_owned());
            }
            tracing::info!(autotune_results = ?config.autotune.cache, "GPU kernel tuning");
            CubeClRuntimeConfig::set(config);
        });
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    let _ = dir;
}

/// The CPU's model name (`/proc/cpuinfo`), or `CPU`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "CPU".to_owned())
}

/// The wgpu adapter cubecl will pick for burn's default `WgpuDevice`: the one named by
/// `CUBECL_WGPU_DEFAULT_DEVICE` (`DiscreteGpu(0)`, `Cpu`, ...), else the high-performance
/// adapter of the platform's graphics API (Vulkan on Linux).
#[cfg(feature = "wgpu")]
mod wgpu_adapter {
    use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
    use wgpu::{DeviceType, Instance, InstanceDescriptor, PowerPreference, RequestAdapterOptions};

    /// Lets the user know what to do when no adapter is found.
    const NO_ADAPTER_HINT: &str = "install a GPU driver with Vulkan (Metal on macOS, DirectX 12 \
        on Windows), or on a machine without a GPU Mesa's lavapipe software driver (Debian: \
        `apt-get install mesa-vulkan-drivers`) with CUBECL_WGPU_DEFAULT_DEVICE=Cpu";

    pub fn find() -> Result<String, String> {
        let api = AutoGraphicsApi::backend();
        let instance = Instance::new(InstanceDescriptor {
            backends: api.into(),
            ..InstanceDescriptor::new_without_display_handle()
        });
        let adapters = futures_lite::future::block_on(instance.enumerate_adapters(api.into()));
        let all: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
        let wanted = std::env::var("CUBECL_WGPU_DEFAULT_DEVICE").ok();
        let chosen = match wanted.as_deref().and_then(parse_device) {
            Some((kind, index)) => {
                let of_kind: Vec<_> = adapters
                    .iter()
                    .filter(|a| a.get_info().device_type == kind)
                    .collect();
                let other: Vec<_> = adapters
                    .iter()
                    .filter(|a| a.get_info().device_type == DeviceType::Other)
                    .collect();
                of_kind
                    .get(index)
                    .or(other.get(index))
                    .map(|a| a.get_info())
                    .ok_or_else(|| {
                        format!(
                            "CUBECL_WGPU_DEFAULT_DEVICE={} names no {api:?} adapter of this \
                             machine (found: {}); {NO_ADAPTER_HINT}",
                            wanted.as_deref().unwrap_or_default(),
                            list(&all)
                        )
                    })?
            }
            None => {
                futures_lite::future::block_on(instance.request_adapter(&RequestAdapterOptions {
                    power_preference: PowerPreference::HighPerformance,
                    force_fallback_adapter: false,
                    compatible_surface: None,
                }))
                .map(|a| a.get_info())
                .map_err(|_| format!("no {api:?} adapter found; {NO_ADAPTER_HINT}"))?
            }
        };
        Ok(describe(&chosen))
    }

    /// `DiscreteGpu(1)`, `IntegratedGpu(0)`, `VirtualGpu(0)` or `Cpu`, as cubecl reads them.
    fn parse_device(text: &str) -> Option<(DeviceType, usize)> {
        if text == "Cpu" {
            return Some((DeviceType::Cpu, 0));
        }
        let (kind, rest) = text.split_once('(')?;
        let index = rest.strip_suffix(')')?.parse().ok()?;
        let kind = match kind {
            "DiscreteGpu" => DeviceType::DiscreteGpu,
            "IntegratedGpu" => DeviceType::IntegratedGpu,
            "VirtualGpu" => DeviceType::VirtualGpu,
            _ => return None,
        };
        Some((kind, index))
    }

    fn describe(info: &wgpu::AdapterInfo) -> String {
        format!(
            "{}, {:?} {:?}, driver {} {}",
            info.name, info.device_type, info.backend, info.driver, info.driver_info
        )
        .trim_end()
        .to_owned()
    }

    fn list(all: &[String]) -> String {
        if all.is_empty() {
            "none".to_owned()
        } else {
            all.join("; ")
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn device_overrides_parse_as_cubecl_reads_them() {
            assert_eq!(parse_device("Cpu"), Some((DeviceType::Cpu, 0)));
            assert_eq!(
                parse_device("DiscreteGpu(1)"),
                Some((DeviceType::DiscreteGpu, 1))
            );
            assert_eq!(parse_device("Gpu"), None);
        }
    }
}

/// The NVIDIA driver, NVRTC and the CUDA headers that burn's `cuda` backend loads at run time
/// (cudarc loads the libraries dynamically; cubecl compiles kernels with NVRTC against the
/// toolkit's headers, from `CUDA_PATH`, else `/usr/local/cuda`, `/opt/cuda` or `/usr`).
#[cfg(feature = "cuda")]
mod cuda_driver {
    use std::ffi::{c_char, c_int, c_void, CStr, CString};
    use std::path::PathBuf;

    /// A `dlopen`ed library, kept loaded for the process.
    struct Library(*mut c_void);

    impl Library {
        fn open_any(names: &[&str]) -> Option<(Library, String)> {
            names.iter().find_map(|name| {
                let c_name = CString::new(*name).ok()?;
                // SAFETY: dlopen with a NUL-terminated name; a null handle means not found.
                let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW) };
                (!handle.is_null()).then(|| (Library(handle), (*name).to_owned()))
            })
        }

        /// The function `name` of type `F` (a C function pointer type), if the library has it.
        fn symbol<F: Copy>(&self, name: &CStr) -> Option<F> {
            // SAFETY: dlsym on a live handle; the caller names the symbol's true C type.
            let pointer = unsafe { libc::dlsym(self.0, name.as_ptr()) };
            (!pointer.is_null()).then(|| unsafe { std::mem::transmute_copy(&pointer) })
        }
    }

    type DriverGetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;
    type Init = unsafe extern "C" fn(u32) -> c_int;
    type DeviceGet = unsafe extern "C" fn(*mut c_int, c_int) -> c_int;
    type DeviceGetName = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;

    pub fn find() -> Result<String, String> {
        let (driver, _) = Library::open_any(&["libcuda.so.1", "libcuda.so"]).ok_or(
            "the NVIDIA driver's libcuda.so.1 was not found: install the NVIDIA driver \
             (`nvidia-smi` should list the GPU)",
        )?;
        let (_, nvrtc) = Library::open_any(&[
            "libnvrtc.so",
            "libnvrtc.so.13",
            "libnvrtc.so.12",
            "libnvrtc.so.11",
        ])
        .ok_or(
            "NVRTC (libnvrtc.so) was not found: install the CUDA toolkit and put its lib64 \
             folder on LD_LIBRARY_PATH",
        )?;
        let headers = cuda_path()
            .map(|path| path.join("include"))
            .filter(|include| include.join("cuda.h").exists())
            .ok_or(
                "the CUDA toolkit's headers (include/cuda.h) were not found: set CUDA_PATH to \
                 the toolkit (by default /usr/local/cuda)",
            )?;
        let mut version: c_int = 0;
        let mut device: c_int = 0;
        let mut name = [0 as c_char; 256];
        let get_version: DriverGetVersion = driver
            .symbol(c"cuDriverGetVersion")
            .ok_or("libcuda has no cuDriverGetVersion")?;
        let init: Init = driver.symbol(c"cuInit").ok_or("libcuda has no cuInit")?;
        let device_get: DeviceGet = driver
            .symbol(c"cuDeviceGet")
            .ok_or("libcuda has no cuDeviceGet")?;
        let device_name: DeviceGetName = driver
            .symbol(c"cuDeviceGetName")
            .ok_or("libcuda has no cuDeviceGetName")?;
        // SAFETY: the driver API's documented signatures, with valid out-pointers.
        let status = unsafe {
            match init(0) {
                0 => match device_get(&mut device, 0) {
                    0 => device_name(name.as_mut_ptr(), name.len() as c_int, device)
                        .max(get_version(&mut version)),
                    error => error,
                },
                error => error,
            }
        };
        if status != 0 {
            return Err(format!(
                "the CUDA driver found no usable GPU (CUDA error {status}): check `nvidia-smi`"
            ));
        }
        // SAFETY: cuDeviceGetName wrote a NUL-terminated name into the buffer.
        let name = unsafe { CStr::from_ptr(name.as_ptr()) }.to_string_lossy();
        Ok(format!(
            "{name}, CUDA driver {}.{}, {nvrtc}, headers in {}",
            version / 1000,
            version % 1000 / 10,
            headers.display()
        ))
    }

    /// Where cubecl looks for the CUDA toolkit.
    fn cuda_path() -> Option<PathBuf> {
        if let Ok(path) = std::env::var("CUDA_PATH") {
            return Some(PathBuf::from(path));
        }
        ["/usr/local/cuda", "/opt/cuda", "/usr"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.join("include/cuda.h").exists())
    }
}

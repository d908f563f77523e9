//! Where the model runs: `auto` (CUDA when present, else CPU), `cpu`, or `cuda:N`.

use std::fmt;
use std::str::FromStr;

use crate::EngineError;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        let bad = || EngineError::Config {
            what: "device".into(),
            message: format!("expected auto, cpu or cuda:N, got {s:?}"),
        };
        match s.trim() {
            "auto" | "" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(bad),
        }
    }
}

crate::serde_as_string!(DeviceSpec);

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// The libtorch device this resolves to on this machine, or why it cannot.
    pub fn resolve(self) -> Result<tch::Device, EngineError> {
        match self {
            DeviceSpec::Cpu => Ok(tch::Device::Cpu),
            DeviceSpec::Auto => Ok(if tch::Cuda::is_available() {
                tch::Device::Cuda(0)
            } else {
                tch::Device::Cpu
            }),
            DeviceSpec::Cuda(n) => {
                let count = if tch::Cuda::is_available() {
                    tch::Cuda::device_count() as usize
                } else {
                    0
                };
                if n < count {
                    Ok(tch::Device::Cuda(n))
                } else {
                    Err(EngineError::Config {
                        what: "device".into(),
                        message: format!(
                            "cuda:{n} was asked for but this machine has {count} CUDA device(s)"
                        ),
                    })
                }
            }
        }
    }
}

/// A device's name as users write it.
pub fn device_name(d: tch::Device) -> String {
    match d {
        tch::Device::Cuda(n) => format!("cuda:{n}"),
        tch::Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        let e = "gpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(e.contains("device") && e.contains("gpu"), "{e}");
    }

    #[test]
    fn cpu_always_resolves_and_missing_cuda_is_explained() {
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), tch::Device::Cpu);
        let auto = DeviceSpec::Auto.resolve().unwrap();
        assert_eq!(auto == tch::Device::Cpu, !tch::Cuda::is_available());
        let e = DeviceSpec::Cuda(99).resolve().unwrap_err().to_string();
        assert!(e.contains("cuda:99"), "{e}");
    }
}

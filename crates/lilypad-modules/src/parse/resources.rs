//! `[resources]`: what a job needs of the provider's machine.

use lilypad_toml::{Errors, describe, format_bytes};

use crate::module::Resources;

/// The smallest memory limit Docker accepts, rounded up.
pub(crate) const MIN_MEMORY_BYTES: u64 = 8 << 20;
const RESOURCE_KEYS: &[&str] = &["cpu", "memory", "gpus", "vram"];

pub(super) fn read_resources(r: &mut Errors, table: &toml::Table) -> Option<Resources> {
    let Some(v) = table.get("resources") else {
        r.error(
            "resources",
            "missing",
            "say what a job needs, e.g. [resources] cpu = 1 and memory = \"256MiB\"",
        );
        return None;
    };
    let t = r.table("resources", v, "write [resources] with cpu and memory")?;
    r.unknown_keys(t, "resources.", RESOURCE_KEYS);
    let cpu_fix = "write the CPU cores a job needs, from 0.01 to 1024, e.g. cpu = 1 or cpu = 0.5";
    let cpu_millis = match t.get("cpu") {
        None => {
            r.error("resources.cpu", "missing", cpu_fix);
            None
        }
        Some(v) => r.number("resources.cpu", v, cpu_fix).and_then(|x| {
            if (0.01..=1024.0).contains(&x) {
                Some((x * 1000.0).round() as u64)
            } else {
                r.error("resources.cpu", format!("{x} is out of range"), cpu_fix);
                None
            }
        }),
    };
    let mem_fix = format!(
        "write the memory limit, at least {}, e.g. memory = \"256MiB\"",
        format_bytes(MIN_MEMORY_BYTES)
    );
    let memory_bytes = match t.get("memory") {
        None => {
            r.error("resources.memory", "missing", &mem_fix);
            None
        }
        Some(v) => r.size("resources.memory", v, &mem_fix).and_then(|n| {
            if n >= MIN_MEMORY_BYTES {
                Some(n)
            } else {
                r.error(
                    "resources.memory",
                    format!("{} is below Docker's minimum", format_bytes(n)),
                    &mem_fix,
                );
                None
            }
        }),
    };
    let gpu_fix = "write how many GPUs a job needs, from 0 to 64, e.g. gpus = 1";
    let gpus = match t.get("gpus") {
        None => Some(0),
        Some(toml::Value::Integer(n)) if (0..=64).contains(n) => Some(*n as u32),
        Some(v) => {
            r.error(
                "resources.gpus",
                format!("{} is not a GPU count", describe(v)),
                gpu_fix,
            );
            None
        }
    };
    let vram_bytes = match t.get("vram") {
        None => Some(0),
        Some(v) => r.size(
            "resources.vram",
            v,
            "write the memory each GPU must have, e.g. vram = \"8GiB\"",
        ),
    };
    if let (Some(0), Some(vram)) = (gpus, vram_bytes)
        && vram > 0
    {
        r.error(
            "resources.vram",
            "vram is set but gpus is 0",
            "set gpus = 1 (or more), or remove vram",
        );
        return None;
    }
    Some(Resources {
        cpu_millis: cpu_millis?,
        memory_bytes: memory_bytes?,
        gpus: gpus?,
        vram_bytes: vram_bytes?,
    })
}

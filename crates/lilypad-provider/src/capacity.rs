//! What the provider has, what its running jobs hold, and whether one more job fits.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use lilypad_modules::Resources;
use lilypad_types::Capacity;

/// Why a job does not fit right now: exactly what is short.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not enough CPU free.
    #[error("needs {needs} CPU millis, {free} free (of {total})")]
    Cpu {
        /// What the job needs.
        needs: u64,
        /// What is free now.
        free: u64,
        /// The provider's total.
        total: u64,
    },
    /// Not enough memory free.
    #[error("needs {needs} bytes of memory, {free} free (of {total})")]
    Memory {
        /// What the job needs.
        needs: u64,
        /// What is free now.
        free: u64,
        /// The provider's total.
        total: u64,
    },
    /// Not enough free GPUs with enough memory.
    #[error(
        "needs {needs} GPUs with at least {vram_bytes} bytes of memory each, {free} such GPUs free (of {total} GPUs)"
    )]
    Gpus {
        /// How many GPUs the job needs.
        needs: u32,
        /// Memory each must have.
        vram_bytes: u64,
        /// How many free GPUs have that much.
        free: usize,
        /// How many GPUs the provider has.
        total: usize,
    },
}

#[derive(Debug)]
struct State {
    total: Capacity,
    used_cpu: u64,
    used_memory: u64,
    /// One flag per entry of `total.gpu_vram_bytes`: taken by a job.
    gpu_taken: Vec<bool>,
}

/// Tracks the provider's capacity across concurrent jobs. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct CapacityTracker {
    state: Arc<Mutex<State>>,
    freed: Arc<Notify>,
}

/// Capacity held by one job; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    state: Arc<Mutex<State>>,
    freed: Arc<Notify>,
    cpu: u64,
    memory: u64,
    gpus: Vec<usize>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is a few counters updated without panicking in between: a poisoned lock still
    // holds consistent numbers.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl CapacityTracker {
    /// A tracker for `total` (CPU millis, memory bytes, one entry per GPU with its memory).
    pub fn new(total: Capacity) -> Self {
        let gpu_taken = vec![false; total.gpu_vram_bytes.len()];
        Self {
            state: Arc::new(Mutex::new(State {
                total,
                used_cpu: 0,
                used_memory: 0,
                gpu_taken,
            })),
            freed: Arc::new(Notify::new()),
        }
    }

    /// A tracker for the host's GPUs as `lilypad_executor::detect_gpus` found them, with the
    /// given CPU and memory.
    pub fn with_gpus(cpu_millis: u64, memory_bytes: u64, gpus: &[lilypad_executor::Gpu]) -> Self {
        Self::new(Capacity {
            cpu_millis,
            memory_bytes,
            gpu_vram_bytes: gpus.iter().map(|g| g.memory_mib << 20).collect(),
        })
    }

    /// Returns once a reservation has been given back since the last call (at once if one was
    /// meanwhile): the moment to tell the market about the freed capacity.
    pub async fn freed(&self) {
        self.freed.notified().await;
    }

    /// Everything the provider has.
    pub fn total(&self) -> Capacity {
        lock(&self.state).total.clone()
    }

    /// What is free now.
    pub fn free(&self) -> Capacity {
        let s = lock(&self.state);
        Capacity {
            cpu_millis: s.total.cpu_millis.saturating_sub(s.used_cpu),
            memory_bytes: s.total.memory_bytes.saturating_sub(s.used_memory),
            gpu_vram_bytes: s
                .total
                .gpu_vram_bytes
                .iter()
                .zip(&s.gpu_taken)
                .filter(|(_, taken)| !**taken)
                .map(|(v, _)| *v)
                .collect(),
        }
    }

    /// Reserves what a job of a module with `needs` takes, or says what does not fit.
    pub fn try_reserve(&self, needs: &Resources) -> Result<Reservation, Refusal> {
        let mut s = lock(&self.state);
        let free_cpu = s.total.cpu_millis.saturating_sub(s.used_cpu);
        if needs.cpu_millis > free_cpu {
            return Err(Refusal::Cpu {
                needs: needs.cpu_millis,
                free: free_cpu,
                total: s.total.cpu_millis,
            });
        }
        let free_memory = s.total.memory_bytes.saturating_sub(s.used_memory);
        if needs.memory_bytes > free_memory {
            return Err(Refusal::Memory {
                needs: needs.memory_bytes,
                free: free_memory,
                total: s.total.memory_bytes,
            });
        }
        // The smallest GPUs that are big enough, so large ones stay free for jobs that need them.
        let mut fitting: Vec<(u64, usize)> = s
            .total
            .gpu_vram_bytes
            .iter()
            .enumerate()
            .filter(|(i, v)| !s.gpu_taken[*i] && **v >= needs.vram_bytes)
            .map(|(i, v)| (*v, i))
            .collect();
        let wanted = needs.gpus as usize;
        if fitting.len() < wanted {
            return Err(Refusal::Gpus {
                needs: needs.gpus,
                vram_bytes: needs.vram_bytes,
                free: fitting.len(),
                total: s.total.gpu_vram_bytes.len(),
            });
        }
        fitting.sort_unstable();
        let gpus: Vec<usize> = fitting.iter().take(wanted).map(|(_, i)| *i).collect();
        for i in &gpus {
            s.gpu_taken[*i] = true;
        }
        s.used_cpu += needs.cpu_millis;
        s.used_memory += needs.memory_bytes;
        Ok(Reservation {
            state: Arc::clone(&self.state),
            freed: Arc::clone(&self.freed),
            cpu: needs.cpu_millis,
            memory: needs.memory_bytes,
            gpus,
        })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut s = lock(&self.state);
        s.used_cpu = s.used_cpu.saturating_sub(self.cpu);
        s.used_memory = s.used_memory.saturating_sub(self.memory);
        for i in &self.gpus {
            if let Some(taken) = s.gpu_taken.get_mut(*i) {
                *taken = false;
            }
        }
        drop(s);
        self.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn needs(cpu: u64, memory: u64, gpus: u32, vram: u64) -> Resources {
        Resources {
            cpu_millis: cpu,
            memory_bytes: memory,
            gpus,
            vram_bytes: vram,
        }
    }

    fn tracker() -> CapacityTracker {
        CapacityTracker::new(Capacity {
            cpu_millis: 4000,
            memory_bytes: 8 * GIB,
            gpu_vram_bytes: vec![24 * GIB, 8 * GIB],
        })
    }

    #[test]
    fn several_jobs_run_at_once_while_they_fit() {
        let t = tracker();
        let a = t.try_reserve(&needs(1500, GIB, 0, 0)).unwrap();
        let b = t.try_reserve(&needs(1500, GIB, 0, 0)).unwrap();
        let free = t.free();
        assert_eq!(free.cpu_millis, 1000);
        assert_eq!(free.memory_bytes, 6 * GIB);
        let refusal = t.try_reserve(&needs(2000, MIB, 0, 0)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "needs 2000 CPU millis, 1000 free (of 4000)"
        );
        drop(a);
        assert_eq!(t.free().cpu_millis, 2500);
        let _c = t.try_reserve(&needs(2000, MIB, 0, 0)).unwrap();
        drop(b);
        assert_eq!(t.free().cpu_millis, 2000);
    }

    #[test]
    fn memory_refusals_say_how_much_is_free() {
        let t = tracker();
        let _a = t.try_reserve(&needs(100, 7 * GIB, 0, 0)).unwrap();
        let refusal = t.try_reserve(&needs(100, 2 * GIB, 0, 0)).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Memory {
                needs: 2 * GIB,
                free: GIB,
                total: 8 * GIB
            }
        );
        assert!(refusal.to_string().contains("1073741824 free"), "{refusal}");
        // A refusal takes nothing.
        assert_eq!(t.free().cpu_millis, 3900);
    }

    #[test]
    fn gpus_are_handed_out_by_memory_and_returned_on_drop() {
        let t = tracker();
        // The small GPU goes to the small job, keeping the big one free.
        let small = t.try_reserve(&needs(100, MIB, 1, 4 * GIB)).unwrap();
        assert_eq!(t.free().gpu_vram_bytes, vec![24 * GIB]);
        let big = t.try_reserve(&needs(100, MIB, 1, 16 * GIB)).unwrap();
        assert!(t.free().gpu_vram_bytes.is_empty());
        let refusal = t.try_reserve(&needs(100, MIB, 1, 0)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "needs 1 GPUs with at least 0 bytes of memory each, 0 such GPUs free (of 2 GPUs)"
        );
        drop(small);
        drop(big);
        assert_eq!(t.free(), t.total());
        let too_big = t.try_reserve(&needs(100, MIB, 1, 32 * GIB)).unwrap_err();
        assert!(
            matches!(too_big, Refusal::Gpus { free: 0, .. }),
            "{too_big}"
        );
        let two = t.try_reserve(&needs(100, MIB, 2, 8 * GIB)).unwrap();
        assert!(t.free().gpu_vram_bytes.is_empty());
        drop(two);
    }

    #[test]
    fn a_job_bigger_than_the_whole_provider_is_refused_with_the_total() {
        let t = tracker();
        let refusal = t.try_reserve(&needs(8000, MIB, 0, 0)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "needs 8000 CPU millis, 4000 free (of 4000)"
        );
    }
}

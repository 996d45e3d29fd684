//! The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): how long the timer's own work
//! took, apart from time the OS gave the CPU to other threads meanwhile.

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// `CLOCK_THREAD_CPUTIME_ID` on Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// CPU time the calling thread has used, in µs; `None` where the clock is not available.
pub fn thread_cpu_us() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        let mut ts = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec to the pointer we own; the layout matches
        // the C struct on 64-bit Linux (two 64-bit fields).
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc != 0 {
            return None;
        }
        let us = ts
            .tv_sec
            .checked_mul(1_000_000)?
            .checked_add(ts.tv_nsec / 1_000)?;
        u64::try_from(us).ok()
    }
    #[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thread_cpu_time_moves_forward_with_work() {
        let Some(a) = super::thread_cpu_us() else {
            return;
        };
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = super::thread_cpu_us().unwrap_or(0);
        assert!(b > a, "{a} -> {b}");
    }
}

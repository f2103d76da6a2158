//! Ctrl-C (SIGINT), SIGTERM, and docker's word that it got one, while a
//! command runs. A command meets an interrupt in one of three ways:
//!
//! - by default it ends the process, as the signal itself would;
//! - [`Interrupt::watch`] (`up`): the first one is noted, so that the command
//!   can undo what it started (a half-started stack) and then exit; a second
//!   one ends the process at once;
//! - [`PassOn`] (`run -- CMD`, `logs -f`): it goes on to the user's child
//!   process, which decides; its exit code becomes ours, as with `cargo run`.
//!
//! Docker, when it runs the plugin and is not writing to a terminal, does not
//! pass a SIGINT or SIGTERM it gets on to us: it closes the connection to its
//! plugin socket (DESIGN 2). [`listen_to_docker`] holds that connection and
//! treats its closing as a SIGINT to this process. The socket does not say
//! which signal docker got; docker's own plugins (compose) exit 130 on it, as
//! after a Ctrl-C, and so do we.
//!
//! It does not find or open the socket: `plugin.rs` knows the protocol.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::SignalsInfo;
use signal_hook::iterator::exfiltrator::WithRawSiginfo;

/// Where an interrupt goes now; docker's socket closing asks this.
static ROUTE: Mutex<Route> = Mutex::new(Route::Exit);

/// Set when the interrupt a command noted was docker closing its socket.
static FROM_DOCKER: AtomicBool = AtomicBool::new(false);

enum Route {
    /// Nothing watches: end the process.
    Exit,
    /// `Interrupt::watch`: note it.
    Watch {
        seen: Arc<AtomicBool>,
        signal: Arc<AtomicUsize>,
    },
    /// `PassOn`: send it to the child, once there is one.
    PassOn { child: Option<Pid>, pending: bool },
    /// The child has exited: the command is returning its code.
    Done,
}

fn route() -> MutexGuard<'static, Route> {
    ROUTE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which signal arrived, once one has.
pub(crate) struct Interrupt {
    /// The number of the first signal; 0 until one arrives.
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// From now on, SIGINT and SIGTERM (and docker closing its socket) no
    /// longer end the process; the first is recorded and a second ends it
    /// with 128 + its number.
    pub(crate) fn watch() -> Result<Interrupt> {
        let seen = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            // Handlers run in the order they were registered: the shutdown
            // looks at the flag before the flag is set, so only a second
            // signal finds it set.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&seen))
                .and_then(|_| {
                    signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)
                })
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&seen)))
                .context("failed to install the signal handlers")?;
        }
        *route() = Route::Watch {
            seen,
            signal: Arc::clone(&signal),
        };
        Ok(Interrupt { signal })
    }

    /// The signal that arrived, if one has: SIGINT when docker closed its
    /// socket.
    pub(crate) fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }
}

/// The usual name of the interrupt [`Interrupt::signal`] reported.
pub(crate) fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT if FROM_DOCKER.load(Ordering::SeqCst) => {
            "a signal to `docker` (it closed the plugin socket)"
        }
        SIGINT => "SIGINT (Ctrl-C)",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The exit code for a child's status, as a shell reports it: its own code,
/// or 128 + the signal that ended it.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        (None, None) => 1,
    }
}

/// Holds docker's plugin socket open and, when docker closes it, acts as a
/// SIGINT to this process would (see the module docs). Returns at once.
pub(crate) fn listen_to_docker(mut socket: UnixStream) {
    let listen = move || {
        let mut buf = [0u8; 64];
        loop {
            match socket.read(&mut buf) {
                Ok(0) => break,
                // Docker sends nothing on it today; data is not a close.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                // A socket we cannot read tells nothing: go on as run directly.
                Err(_) => return,
            }
        }
        docker_closed();
    };
    // Without the thread the command runs as if run directly.
    let _ = std::thread::Builder::new()
        .name("plugin-socket".into())
        .spawn(listen);
}

fn docker_closed() {
    let mut route = route();
    match &mut *route {
        // What a SIGINT with its default action would do, with the code a
        // shell reports for it rather than docker's 255 for a killed plugin.
        Route::Exit => std::process::exit(128 + SIGINT),
        Route::Watch { seen, signal } => {
            if signal
                .compare_exchange(0, SIGINT as usize, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                FROM_DOCKER.store(true, Ordering::SeqCst);
            }
            // A signal to this process from now on is a second interrupt.
            seen.store(true, Ordering::SeqCst);
        }
        // Docker does not say where its signal came from: a Ctrl-C on a
        // terminal while docker writes into a pipe (`... | tee`) reaches the
        // child from the terminal and again from here.
        Route::PassOn {
            child: Some(pid), ..
        } => send(*pid, SIGINT),
        Route::PassOn { pending, .. } => *pending = true,
        Route::Done => {}
    }
}

fn send(pid: Pid, signal: i32) {
    let signal = if signal == SIGTERM {
        Signal::TERM
    } else {
        Signal::INT
    };
    // The child may be exiting already; it is not reaped before `Done`, so
    // its pid cannot be another process's.
    let _ = rustix::process::kill_process(pid, signal);
}

/// `si_code` of a signal the kernel sent: on Linux, the terminal's Ctrl-C.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SI_KERNEL: i32 = 0x80;

/// Whether the terminal sent this SIGINT: then it went to its whole
/// foreground process group, the child with us.
fn from_terminal(signo: i32, code: i32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return signo == SIGINT && code == SI_KERNEL;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return false;
}

/// SIGINT and SIGTERM, and docker closing its socket, go on to a child (see
/// the module docs).
pub(crate) struct PassOn {
    signals: SignalsInfo<WithRawSiginfo>,
}

impl PassOn {
    /// From now on the signals no longer end this process: they wait for the
    /// child that [`PassOn::run`] starts.
    pub(crate) fn start() -> Result<PassOn> {
        let signals = SignalsInfo::<WithRawSiginfo>::new([SIGINT, SIGTERM])
            .context("failed to install the signal handlers")?;
        *route() = Route::PassOn {
            child: None,
            pending: false,
        };
        Ok(PassOn { signals })
    }

    /// Runs `cmd`, passes interrupts on to it until it has exited, and
    /// returns how it ended. An error is one of starting it.
    pub(crate) fn run(self, cmd: &mut Command) -> io::Result<ExitStatus> {
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                *route() = Route::Exit;
                return Err(e);
            }
        };
        let pid = Pid::from_child(&child);
        if let Route::PassOn { child, pending } = &mut *route() {
            *child = Some(pid);
            if *pending {
                send(pid, SIGINT);
            }
        }
        let mut signals = self.signals;
        let handle = signals.handle();
        let forward = std::thread::spawn(move || {
            for info in signals.forever() {
                // Sending a Ctrl-C again would interrupt the child's own
                // handling of the first one.
                if from_terminal(info.si_signo, info.si_code) {
                    continue;
                }
                if let Route::PassOn {
                    child: Some(pid), ..
                } = &*route()
                {
                    send(*pid, info.si_signo);
                }
            }
        });
        // Exited, not reaped: until `Done` nothing sends to a reused pid.
        let exited = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
        while let Err(rustix::io::Errno::INTR) = rustix::process::waitid(WaitId::Pid(pid), exited) {
        }
        *route() = Route::Done;
        handle.close();
        let _ = forward.join();
        child.wait()
    }
}

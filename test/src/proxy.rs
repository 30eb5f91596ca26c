//! A TCP proxy in front of a service, which a test can take down and bring back: an RPC endpoint
//! that goes away (live connections cut, new ones reset) and returns, as a node restart or a
//! network partition looks to a client.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::process::HarnessError;

/// A proxy on a loopback port of its own, forwarding to `127.0.0.1:<target>` while it is up.
/// Stopped (its listener closed) when dropped.
pub struct TcpProxy {
    port: u16,
    up: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl TcpProxy {
    /// Starts forwarding to `127.0.0.1:<target>`.
    pub fn start(target: u16) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| HarnessError::Io {
            what: "binding the proxy's port".into(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| HarnessError::Io {
                what: "reading the proxy's port".into(),
                source,
            })?
            .port();
        let up = Arc::new(AtomicBool::new(true));
        let closed = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Mutex::new(Vec::new()));
        let (up2, closed2, live2) = (up.clone(), closed.clone(), live.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if closed2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    // Down: the connection is accepted and reset at once.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                if let Ok(mut list) = live2.lock() {
                    for s in [&client, &server] {
                        if let Ok(c) = s.try_clone() {
                            list.push(c);
                        }
                    }
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Ok(Self {
            port,
            up,
            closed,
            live,
        })
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Takes the endpoint down: every live connection is cut and new ones are reset.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut list) = self.live.lock() {
            for s in list.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Brings the endpoint back.
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.down();
        self.closed.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `closed`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` on a thread of its own until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_while_up_and_cuts_and_refuses_while_down() {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = backend.local_addr().unwrap().port();
        thread::spawn(move || {
            for s in backend.incoming().flatten() {
                thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = TcpProxy::start(target).unwrap();
        let echo = |c: &mut TcpStream| -> std::io::Result<Vec<u8>> {
            c.write_all(b"ping")?;
            let mut got = [0u8; 4];
            c.read_exact(&mut got)?;
            Ok(got.to_vec())
        };
        let mut live = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        assert_eq!(echo(&mut live).unwrap(), b"ping");

        proxy.down();
        assert!(echo(&mut live).is_err(), "a live connection is cut");
        let mut fresh = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        assert!(echo(&mut fresh).is_err(), "a new one is reset");

        proxy.up();
        let mut again = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        assert_eq!(echo(&mut again).unwrap(), b"ping");
    }
}

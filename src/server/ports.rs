//! Listeners configured with port 0 get a port from the system, and the gateway
//! says which in its log, so that tests (and anyone running several instances on
//! one machine) never pick a port by binding, closing and hoping.
//!
//! The port is reserved before Pingora binds: a socket bound with `SO_REUSEPORT`
//! but never listening holds it (a socket that does not listen is given no
//! connections), Pingora binds the same port with `SO_REUSEPORT`, and the
//! reservation stays open for the life of the process, so no other program can take
//! the port in between. (Linux lets only processes of the same user share a port
//! this way; a listener with a fixed port is bound without `SO_REUSEPORT`.)

use std::net::SocketAddr;

use anyhow::Context;
use pingora::listeners::TcpSocketOptions;
use socket2::{Domain, Socket, Type};

/// The sockets that hold reserved ports; dropping them gives the ports back.
#[derive(Default)]
pub struct Reservations(Vec<Socket>);

impl Reservations {
    /// The address to listen on, and the socket options Pingora must bind it with:
    /// `addr` itself unless its port is 0, else a port the system chose for it.
    pub fn resolve(&mut self, addr: SocketAddr) -> anyhow::Result<(SocketAddr, TcpSocketOptions)> {
        let mut options = TcpSocketOptions::default();
        if addr.port() != 0 {
            return Ok((addr, options));
        }
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .context("making a socket to reserve a port")?;
        socket.set_reuse_port(true).context("SO_REUSEPORT")?;
        socket
            .bind(&addr.into())
            .with_context(|| format!("reserving a port on {}", addr.ip()))?;
        let bound = socket
            .local_addr()?
            .as_socket()
            .context("the reserved address is not an IP address")?;
        self.0.push(socket);
        options.so_reuseport = Some(true);
        Ok((bound, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_gets_a_port_that_stays_taken() {
        let mut reservations = Reservations::default();
        let (addr, options) = reservations.resolve("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(options.so_reuseport, Some(true));
        assert!(
            std::net::TcpListener::bind(addr).is_err(),
            "nobody without SO_REUSEPORT can take it meanwhile"
        );
        let fixed = "127.0.0.1:8080".parse().unwrap();
        let (same, options) = reservations.resolve(fixed).unwrap();
        assert_eq!((same, options.so_reuseport), (fixed, None));
    }
}

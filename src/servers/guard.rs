//! Where the operator's HTTP clients may connect: no redirects, and no link-local or cloud
//! metadata address unless the administrator named its host.
//!
//! The check runs after name resolution (a DNS name can point anywhere), in the clients' own
//! resolver, and before the request for URLs whose host is an address literal (which the
//! resolver never sees).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::ServersError;

/// Host names of cloud metadata services, refused without resolving them.
const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.com",
];

/// Why an address is refused, or `None` when it may be connected to.
pub fn refused_address(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.octets() == [169, 254, 169, 254] => Some("a cloud metadata address"),
        // Alibaba Cloud's metadata service.
        IpAddr::V4(v4) if v4.octets() == [100, 100, 100, 200] => Some("a cloud metadata address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => {
            Some("a cloud metadata address")
        }
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some("a link-local address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        _ => None,
    }
}

/// The hosts the administrator named (registered servers, allow-list entries): those may be
/// anywhere, metadata and link-local addresses included.
#[derive(Clone, Debug, Default)]
pub struct TrustedHosts(Arc<BTreeSet<String>>);

impl TrustedHosts {
    pub fn new(hosts: impl IntoIterator<Item = String>) -> Self {
        TrustedHosts(Arc::new(
            hosts
                .into_iter()
                .map(|host| host.to_ascii_lowercase())
                .collect(),
        ))
    }

    fn contains(&self, host: &str) -> bool {
        self.0.contains(&host.to_ascii_lowercase())
    }

    /// Refuses `url` when its host is a metadata name or a refused address literal that the
    /// administrator did not name. Names are checked again once resolved, by [`client`]'s resolver.
    pub fn check_url(&self, url: &url::Url) -> Result<(), ServersError> {
        let Some(host) = url.host() else {
            return Ok(());
        };
        let text = url.host_str().unwrap_or_default();
        if self.contains(text) {
            return Ok(());
        }
        let reason = match host {
            url::Host::Ipv4(v4) => refused_address(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => refused_address(IpAddr::V6(v6)),
            url::Host::Domain(name) => metadata_name(name),
        };
        match reason {
            Some(reason) => Err(ServersError::Refused {
                host: text.to_owned(),
                reason: reason.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

fn metadata_name(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    METADATA_NAMES
        .contains(&name.as_str())
        .then_some("a cloud metadata host name")
}

/// Resolves with the system resolver, then drops refused addresses of hosts nobody named.
#[derive(Clone, Debug)]
struct GuardedResolver {
    trusted: TrustedHosts,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let trusted = self.trusted.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let trusted = trusted.contains(&host);
            if let Some(reason) = metadata_name(&host).filter(|_| !trusted) {
                return Err(refusal(&host, reason));
            }
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if trusted {
                return Ok(Box::new(addresses.into_iter()) as Addrs);
            }
            let first_refusal = addresses
                .iter()
                .find_map(|address| refused_address(address.ip()));
            let allowed: Vec<SocketAddr> = addresses
                .into_iter()
                .filter(|address| refused_address(address.ip()).is_none())
                .collect();
            match (allowed.is_empty(), first_refusal) {
                (true, Some(reason)) => Err(refusal(&host, reason)),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

fn refusal(host: &str, reason: &str) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(ServersError::Refused {
        host: host.to_owned(),
        reason: reason.to_owned(),
    })
}

/// An HTTP client for addresses a policy names: rustls, no redirects (a redirect would take the
/// request somewhere nobody chose), the guarded resolver, and a connect timeout.
pub fn client(
    trusted: &TrustedHosts,
    connect_timeout: Duration,
) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver {
            trusted: trusted.clone(),
        }))
        .connect_timeout(connect_timeout)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_metadata_addresses_are_refused() {
        for refused in [
            "169.254.169.254",
            "169.254.1.1",
            "100.100.100.200",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "0.0.0.0",
        ] {
            let ip: IpAddr = refused.parse().unwrap();
            assert!(refused_address(ip).is_some(), "{refused}");
        }
        for allowed in ["127.0.0.1", "10.0.0.5", "172.18.0.1", "::1", "fd00::1"] {
            let ip: IpAddr = allowed.parse().unwrap();
            assert_eq!(refused_address(ip), None, "{allowed}");
        }
    }

    #[test]
    fn named_hosts_may_be_anywhere() {
        let trusted = TrustedHosts::new(["169.254.169.254".to_owned()]);
        let url = |text| url::Url::parse(text).unwrap();
        assert!(trusted.check_url(&url("http://169.254.169.254/")).is_ok());
        let error = trusted
            .check_url(&url("http://169.254.170.2/v2/credentials"))
            .unwrap_err();
        assert!(error.to_string().contains("link-local"), "{error}");
        let error = trusted
            .check_url(&url("http://metadata.google.internal./computeMetadata/v1/"))
            .unwrap_err();
        assert!(error.to_string().contains("metadata"), "{error}");
        assert!(trusted.check_url(&url("http://[fe80::1]:80/")).is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_what_a_name_resolves_to() {
        let resolver = GuardedResolver {
            trusted: TrustedHosts::default(),
        };
        // `localhost` resolves to loopback: allowed.
        let name: Name = "localhost".parse().unwrap();
        assert!(resolver.resolve(name).await.is_ok());
        let name: Name = "metadata.google.internal".parse().unwrap();
        let error = resolver.resolve(name).await.err().unwrap();
        assert!(error.to_string().contains("metadata"), "{error}");
    }
}

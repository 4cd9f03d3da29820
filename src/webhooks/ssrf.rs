//! The guard that keeps tenant-supplied webhook URLs from reaching our own network.
//!
//! A webhook endpoint is a URL a tenant chooses and our servers request, so without a guard a
//! tenant could make us call the cloud metadata service, a database on the private network or an
//! admin port on localhost (server-side request forgery). [`Guard`] refuses every destination that
//! is not an ordinary public unicast address, at three points:
//!
//! 1. **When an endpoint is saved**, [`Guard::check_url_resolving`] checks the URL's shape, its host
//!    if that is a literal address, and every address its name resolves to now, so that a tenant
//!    learns of a refused endpoint from a 422 rather than from failed deliveries.
//! 2. **Before every delivery attempt**, [`Guard::check_url`] again. reqwest does not call the DNS
//!    resolver at all for a URL whose host is a literal IP address, so the resolver below cannot
//!    catch `http://10.0.0.1/`; the delivery code must call `check_url` before each attempt (the
//!    allow-list or the rules may have changed since the endpoint was saved).
//! 3. **When the connection is opened**, through [`GuardedResolver`], the DNS resolver of the
//!    delivery client, which refuses the connection if *any* address the name resolves to is
//!    refused, before a socket is opened. Checking the addresses actually connected to, rather than
//!    a lookup made earlier, is what defeats DNS rebinding (a name that answers a public address
//!    when checked and `127.0.0.1` when used).
//!
//! The delivery client should come from [`Guard::client_builder`], which also turns off what would
//! route around the resolver: proxies from the environment (the proxy would resolve and connect
//! for us) and redirects (a `Location: http://169.254.169.254/` is a literal address, which reqwest
//! would follow without resolving).
//!
//! # What is refused
//!
//! IPv4: `0.0.0.0/8`, `10/8`, `100.64/10`, `127/8`, `169.254/16`, `172.16/12`, `192.0.0/24`,
//! `192.0.2/24`, `192.88.99/24`, `192.168/16`, `198.18/15`, `198.51.100/24`, `203.0.113/24`,
//! `224/4`, `240/4`, `255.255.255.255`, and the metadata addresses of the main clouds, including
//! Azure's `168.63.129.16`, which is public address space but answers only from inside Azure.
//!
//! IPv6: `::/128`, `::1`, `::/96` (IPv4-compatible), `64:ff9b::/96` and `64:ff9b:1::/48` (NAT64),
//! `100::/64`, `2001::/32` (Teredo), `2001:db8::/32` and `3fff::/20` (documentation), `2002::/16`
//! (6to4), `fc00::/7` (including AWS's metadata address `fd00:ec2::254`), `fe80::/10`,
//! `fec0::/10`, `ff00::/8`, and everything else outside `2000::/3`, the only block from which
//! global unicast addresses are assigned.
//!
//! An IPv4-mapped address (`::ffff:a.b.c.d`) is judged as the IPv4 address it embeds, because a
//! connection to it *is* a connection to that IPv4 address: `::ffff:127.0.0.1` is refused as
//! loopback, `::ffff:8.8.8.8` is allowed, and an allow-list entry for `127.0.0.1/32` covers
//! `::ffff:127.0.0.1` too. The tunnelling and translation prefixes (IPv4-compatible, NAT64,
//! 6to4, Teredo) are refused whatever they embed.
//!
//! Host names `localhost` and `*.localhost` are refused by name, without resolving: they name this
//! machine by definition (RFC 6761). The allow-list does not apply to names; development and tests
//! deliver to `http://127.0.0.1:<port>/` with `127.0.0.1/32` allowed.
//!
//! Numeric spellings of addresses (`http://2130706433/`, `http://0x7f.1/`, `http://127.1/`, …) are
//! caught because the URL is parsed with the WHATWG host parser of the `url` crate, the same
//! parser reqwest uses, which normalises all of them to the dotted address before it is checked.

use std::{
    fmt,
    future::Future,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use futures_util::{FutureExt, future::BoxFuture};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// The longest webhook URL accepted, in characters of its normalised form.
pub const MAX_URL_LEN: usize = 2048;

/// How long the save-time check waits for DNS before letting the URL through unresolved.
const SAVE_TIME_RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a URL or address is refused as a webhook destination.
///
/// `Display` gives a sentence fit for the detail of the API's 422 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the webhook URL is not a valid URL: {0}")]
    Malformed(url::ParseError),
    #[error("the webhook URL is {len} characters long; at most {MAX_URL_LEN} are accepted")]
    TooLong { len: usize },
    #[error("webhook URLs must use http or https, not {0}")]
    Scheme(String),
    #[error("webhook URLs must use https")]
    HttpsRequired,
    #[error("the webhook URL has no host")]
    NoHost,
    #[error(
        "webhook URLs may not contain a user name or password; receivers authenticate deliveries by their signature"
    )]
    Credentials,
    #[error("webhook URLs may not contain a fragment (the part after #)")]
    Fragment,
    /// `localhost` or a name under it.
    #[error("webhooks are not delivered to {0}: the name refers to this machine")]
    LocalName(String),
    /// A literal address in the URL, or one an address resolver answered, is refused.
    #[error("webhooks are not delivered to {ip}: it is {}", describe(.ip, .reason))]
    Address { ip: IpAddr, reason: Reason },
    /// A host name resolves to a refused address (one is enough).
    #[error("webhooks are not delivered to {host}: it resolves to {ip}, {}", describe(.ip, .reason))]
    ResolvesTo { host: String, ip: IpAddr, reason: Reason },
}

impl Refusal {
    /// The reason an address was refused, for the refusals about addresses.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Refusal::Address { reason, .. } | Refusal::ResolvesTo { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// The kind of address a refused destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// `0.0.0.0/8` ("this network") and `::`.
    Unspecified,
    Loopback,
    /// RFC 1918 networks and IPv6 unique local addresses (`fc00::/7`).
    Private,
    /// Shared address space of carrier-grade NAT, `100.64/10`.
    Cgnat,
    LinkLocal,
    /// An instance metadata service, which hands out cloud credentials to whoever asks.
    CloudMetadata,
    Documentation,
    /// `198.18/15`, for benchmarking between networks.
    Benchmarking,
    Multicast,
    Broadcast,
    /// Not assigned for use on the internet (`240/4`, IETF protocol assignments, IPv6 outside
    /// `2000::/3`).
    Reserved,
    /// `::/96`, the deprecated IPv4-compatible IPv6 addresses.
    Ipv4Compatible,
    Nat64,
    /// 6to4 (`2002::/16`) and its relay anycast (`192.88.99/24`).
    SixToFour,
    Teredo,
    /// `100::/64`, whose traffic is to be dropped.
    Discard,
    /// `fec0::/10`, deprecated site-local addresses.
    SiteLocal,
}

impl Reason {
    /// A short, stable name of the category, for logs and metrics.
    pub fn category(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::Loopback => "loopback",
            Reason::Private => "private",
            Reason::Cgnat => "cgnat",
            Reason::LinkLocal => "link-local",
            Reason::CloudMetadata => "cloud metadata",
            Reason::Documentation => "documentation",
            Reason::Benchmarking => "benchmarking",
            Reason::Multicast => "multicast",
            Reason::Broadcast => "broadcast",
            Reason::Reserved => "reserved",
            Reason::Ipv4Compatible => "ipv4-compatible",
            Reason::Nat64 => "nat64",
            Reason::SixToFour => "6to4",
            Reason::Teredo => "teredo",
            Reason::Discard => "discard",
            Reason::SiteLocal => "site-local",
        }
    }

    /// What an address of this kind is, to follow "it is".
    fn phrase(self) -> &'static str {
        match self {
            Reason::Unspecified => "an unspecified (\"this network\") address",
            Reason::Loopback => "a loopback address",
            Reason::Private => "a private network address",
            Reason::Cgnat => "a carrier-grade NAT (shared) address",
            Reason::LinkLocal => "a link-local address",
            Reason::CloudMetadata => "a cloud metadata service address",
            Reason::Documentation => "an address reserved for documentation",
            Reason::Benchmarking => "an address reserved for benchmarking",
            Reason::Multicast => "a multicast address",
            Reason::Broadcast => "the broadcast address",
            Reason::Reserved => "a reserved address",
            Reason::Ipv4Compatible => "an IPv4-compatible IPv6 address",
            Reason::Nat64 => "a NAT64 address",
            Reason::SixToFour => "a 6to4 address",
            Reason::Teredo => "a Teredo address",
            Reason::Discard => "a discard-only address",
            Reason::SiteLocal => "a site-local address",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.category())
    }
}

/// "a loopback address", or for an IPv4-mapped address the IPv4 address it stands for as well.
fn describe(ip: &IpAddr, reason: &Reason) -> String {
    match ipv4_mapped(*ip) {
        Some(v4) => format!("the IPv4-mapped form of {v4}, {}", reason.phrase()),
        None => reason.phrase().to_owned(),
    }
}

fn ipv4_mapped(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        IpAddr::V4(_) => None,
    }
}

/// Refused IPv4 networks, most specific first: the first that contains an address names its reason.
const REFUSED_V4: &[(Ipv4Net, Reason)] = &[
    (v4(169, 254, 169, 254, 32), Reason::CloudMetadata), // AWS, GCP, Azure, OpenStack, …
    (v4(100, 100, 100, 200, 32), Reason::CloudMetadata), // Alibaba Cloud
    (v4(168, 63, 129, 16, 32), Reason::CloudMetadata),   // Azure WireServer
    (v4(0, 0, 0, 0, 8), Reason::Unspecified),
    (v4(10, 0, 0, 0, 8), Reason::Private),
    (v4(100, 64, 0, 0, 10), Reason::Cgnat),
    (v4(127, 0, 0, 0, 8), Reason::Loopback),
    (v4(169, 254, 0, 0, 16), Reason::LinkLocal),
    (v4(172, 16, 0, 0, 12), Reason::Private),
    (v4(192, 0, 0, 0, 24), Reason::Reserved),
    (v4(192, 0, 2, 0, 24), Reason::Documentation),
    (v4(192, 88, 99, 0, 24), Reason::SixToFour),
    (v4(192, 168, 0, 0, 16), Reason::Private),
    (v4(198, 18, 0, 0, 15), Reason::Benchmarking),
    (v4(198, 51, 100, 0, 24), Reason::Documentation),
    (v4(203, 0, 113, 0, 24), Reason::Documentation),
    (v4(224, 0, 0, 0, 4), Reason::Multicast),
    (v4(255, 255, 255, 255, 32), Reason::Broadcast),
    (v4(240, 0, 0, 0, 4), Reason::Reserved),
];

/// Refused IPv6 networks, most specific first. IPv4-mapped addresses never get here, and what is
/// outside `2000::/3` and not listed is [`Reason::Reserved`].
const REFUSED_V6: &[(Ipv6Net, Reason)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), Reason::Unspecified),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), Reason::Loopback),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), Reason::Ipv4Compatible),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96), Reason::Nat64),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Reason::Nat64),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Reason::Discard),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), Reason::Teredo),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), Reason::Documentation),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), Reason::Documentation),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), Reason::SixToFour),
    (v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128), Reason::CloudMetadata), // AWS over IPv6
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Reason::Private),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Reason::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Reason::SiteLocal),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Reason::Multicast),
];

const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix_len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix_len)
}

const fn v6(s: [u16; 8], prefix_len: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), prefix_len)
}

/// Why `ip` may not be a webhook destination, or `None` for an ordinary public address.
fn classify(ip: IpAddr) -> Option<Reason> {
    match ip {
        IpAddr::V4(v4) => REFUSED_V4.iter().find(|(net, _)| net.contains(&v4)).map(|&(_, reason)| reason),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify(IpAddr::V4(v4)),
            None => REFUSED_V6
                .iter()
                .find(|(net, _)| net.contains(&v6))
                .map(|&(_, reason)| reason)
                .or_else(|| (!GLOBAL_UNICAST_V6.contains(&v6)).then_some(Reason::Reserved)),
        },
    }
}

/// Decides which destinations webhooks may be delivered to: public addresses, plus the networks of
/// an allow-list.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Networks delivered to even though they would be refused (development and tests allow
    /// `127.0.0.1/32`). Empty in production.
    allowed: Vec<IpNet>,
}

impl Guard {
    /// A guard that also lets through addresses inside `allowed`.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Parses and checks a webhook URL without DNS: http or https (only https if `require_https`,
    /// as for live tenants), a host, no user name or password, no fragment, at most
    /// [`MAX_URL_LEN`] characters, and a host that is neither a refused literal address nor
    /// `localhost`. Returns the URL in normalised form, which is what should be stored and used.
    pub fn check_url(&self, url: &str, require_https: bool) -> Result<Url, Refusal> {
        let url = Url::parse(url).map_err(Refusal::Malformed)?;
        match url.scheme() {
            "https" => {}
            "http" if !require_https => {}
            "http" => return Err(Refusal::HttpsRequired),
            other => return Err(Refusal::Scheme(other.to_owned())),
        }
        match url.host() {
            None => return Err(Refusal::NoHost),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(Refusal::LocalName(name.to_owned()));
                }
            }
            Some(Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4))?,
            Some(Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6))?,
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        if url.fragment().is_some() {
            return Err(Refusal::Fragment);
        }
        if url.as_str().len() > MAX_URL_LEN {
            return Err(Refusal::TooLong { len: url.as_str().len() });
        }
        Ok(url)
    }

    /// Checks one address: refused if it is not a public unicast address, unless the allow-list
    /// contains it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        let Some(reason) = classify(ip) else { return Ok(()) };
        let same_v4 = ipv4_mapped(ip).map(IpAddr::V4);
        if self.allowed.iter().any(|net| net.contains(&ip) || same_v4.is_some_and(|v4| net.contains(&v4))) {
            return Ok(());
        }
        Err(Refusal::Address { ip, reason })
    }

    /// The check for when an endpoint is saved: [`check_url`](Self::check_url), then the host name
    /// resolved (for at most two seconds) and refused if *any* of its addresses is refused.
    ///
    /// A name that does not resolve, or not in time, is accepted: the receiver may not exist yet,
    /// and every connection is checked again by [`GuardedResolver`].
    pub async fn check_url_resolving(&self, url: &str, require_https: bool) -> Result<Url, Refusal> {
        self.check_url_resolving_with(url, require_https, system_lookup, SAVE_TIME_RESOLVE_TIMEOUT).await
    }

    async fn check_url_resolving_with<F>(
        &self,
        url: &str,
        require_https: bool,
        lookup: impl Fn(&str) -> F,
        timeout: Duration,
    ) -> Result<Url, Refusal>
    where
        F: Future<Output = io::Result<Vec<IpAddr>>>,
    {
        let url = self.check_url(url, require_https)?;
        if let Some(Host::Domain(name)) = url.host()
            && let Ok(Ok(ips)) = tokio::time::timeout(timeout, lookup(name)).await
        {
            self.check_resolved(name, &ips)?;
        }
        Ok(url)
    }

    /// Refuses `host` if any of the addresses it resolved to is refused.
    fn check_resolved(&self, host: &str, ips: &[IpAddr]) -> Result<(), Refusal> {
        ips.iter().try_for_each(|&ip| {
            self.check_ip(ip).map_err(|refusal| match refusal {
                Refusal::Address { ip, reason } => Refusal::ResolvesTo { host: host.to_owned(), ip, reason },
                other => other,
            })
        })
    }

    /// The DNS resolver for the delivery client, resolving with the system resolver. Prefer
    /// [`client_builder`](Self::client_builder), which installs it.
    pub fn resolver(&self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver::new(self.clone()))
    }

    /// A reqwest client builder for webhook delivery: see [`GuardedResolver::client_builder`].
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        GuardedResolver::new(self.clone()).client_builder()
    }
}

/// Answers the addresses of a host name.
type Lookup = dyn Fn(&str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> + Send + Sync;

/// A reqwest DNS resolver that fails the connection, before any socket is opened, when any
/// address the name resolves to is refused by its [`Guard`]. Names only: see the module
/// documentation for literal addresses.
#[derive(Clone)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
    lookup: Arc<Lookup>,
}

impl GuardedResolver {
    /// Resolves with the system resolver (`getaddrinfo`, as reqwest does by default).
    pub fn new(guard: Guard) -> Self {
        Self::with_lookup(guard, system_lookup)
    }

    /// Resolves with `lookup` instead of the system resolver, for tests.
    pub fn with_lookup(
        guard: Guard,
        lookup: impl Fn(&str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> + Send + Sync + 'static,
    ) -> Self {
        Self { guard: Arc::new(guard), lookup: Arc::new(lookup) }
    }

    /// A reqwest client builder that resolves through this resolver, ignores the proxy settings
    /// of the environment (a proxy would connect on our behalf, past the resolver) and follows no
    /// redirects (a redirect to a literal address would bypass the resolver; a 3xx is an answer
    /// like any other to a webhook). Timeouts and the rest are for the caller to add.
    pub fn client_builder(self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().dns_resolver(Arc::new(self)).no_proxy().redirect(reqwest::redirect::Policy::none())
    }
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver").field("guard", &self.guard).finish_non_exhaustive()
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_owned();
        let lookup = (self.lookup)(&host);
        Box::pin(async move {
            let ips = lookup.await?;
            guard.check_resolved(&host, &ips)?;
            // Port 0 tells reqwest to use the URL's port, or the scheme's.
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

fn system_lookup(host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
    let host = host.to_owned();
    async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|addr| addr.ip()).collect()) }.boxed()
}

#[cfg(test)]
mod tests {
    use std::{
        error::Error as _,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
        time::timeout,
    };

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard_allowing(nets: &[&str]) -> Guard {
        Guard::new(nets.iter().map(|net| net.parse().unwrap()).collect())
    }

    fn refused_address(url: &str) -> (IpAddr, Reason) {
        match Guard::default().check_url(url, false) {
            Err(Refusal::Address { ip, reason }) => (ip, reason),
            other => panic!("{url}: expected an address refusal, got {other:?}"),
        }
    }

    #[test]
    fn classifies_the_edges_of_every_refused_ipv4_network() {
        use Reason::*;
        let cases = [
            ("0.0.0.0", Some(Unspecified)),
            ("0.255.255.255", Some(Unspecified)),
            ("1.0.0.0", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some(Cgnat)),
            ("100.127.255.255", Some(Cgnat)),
            ("100.128.0.0", None),
            ("100.100.100.200", Some(CloudMetadata)),
            ("126.255.255.255", None),
            ("127.0.0.0", Some(Loopback)),
            ("127.255.255.255", Some(Loopback)),
            ("128.0.0.0", None),
            ("168.63.129.16", Some(CloudMetadata)),
            ("169.253.255.255", None),
            ("169.254.0.0", Some(LinkLocal)),
            ("169.254.169.254", Some(CloudMetadata)),
            ("169.254.255.255", Some(LinkLocal)),
            ("169.255.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.0", None),
            ("192.0.0.0", Some(Reserved)),
            ("192.0.0.255", Some(Reserved)),
            ("192.0.1.0", None),
            ("192.0.2.0", Some(Documentation)),
            ("192.0.2.255", Some(Documentation)),
            ("192.0.3.0", None),
            ("192.88.98.255", None),
            ("192.88.99.0", Some(SixToFour)),
            ("192.88.100.0", None),
            ("192.167.255.255", None),
            ("192.168.0.0", Some(Private)),
            ("192.168.255.255", Some(Private)),
            ("192.169.0.0", None),
            ("198.17.255.255", None),
            ("198.18.0.0", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("198.20.0.0", None),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.7", Some(Documentation)),
            ("203.0.114.0", None),
            ("223.255.255.255", None),
            ("224.0.0.0", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("240.0.0.0", Some(Reserved)),
            ("255.255.255.254", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("8.8.8.8", None),
            ("93.184.215.14", None),
        ];
        for (addr, expected) in cases {
            assert_eq!(classify(ip(addr)), expected, "{addr}");
        }
    }

    #[test]
    fn classifies_ipv6_and_judges_mapped_addresses_by_their_ipv4() {
        use Reason::*;
        let cases = [
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::2", Some(Ipv4Compatible)),
            ("::8.8.8.8", Some(Ipv4Compatible)),
            ("::ffff:8.8.8.8", None),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:169.254.169.254", Some(CloudMetadata)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("64:ff9b::808:808", Some(Nat64)),
            ("64:ff9b::a00:1", Some(Nat64)),
            ("64:ff9b:1::1", Some(Nat64)),
            ("100::1", Some(Discard)),
            ("2001::1", Some(Teredo)),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some(Teredo)),
            ("2001:1::1", None),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("3fff:1000::", None),
            ("2002::1", Some(SixToFour)),
            ("2002:7f00:1::", Some(SixToFour)),
            ("fc00::1", Some(Private)),
            ("fdff:ffff::1", Some(Private)),
            ("fd00:ec2::254", Some(CloudMetadata)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("ff02::1", Some(Multicast)),
            ("4000::1", Some(Reserved)),
            ("1fff::1", Some(Reserved)),
            ("2606:4700:4700::1111", None),
            ("2001:4860:4860::8888", None),
            ("2a00:1450:4001::200e", None),
        ];
        for (addr, expected) in cases {
            assert_eq!(classify(ip(addr)), expected, "{addr}");
        }
    }

    #[test]
    fn numeric_spellings_of_loopback_are_normalised_and_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://１２７．０．０．１/",
            "HTTP://127.0.0.1:80/",
        ] {
            assert_eq!(refused_address(url), (ip("127.0.0.1"), Reason::Loopback), "{url}");
        }
    }

    #[test]
    fn ipv6_literals_are_refused_including_mapped_and_tunnelled_forms() {
        assert_eq!(refused_address("http://[::1]/"), (ip("::1"), Reason::Loopback));
        assert_eq!(refused_address("http://[0:0:0:0:0:0:0:1]:8080/"), (ip("::1"), Reason::Loopback));
        assert_eq!(refused_address("http://[::ffff:127.0.0.1]/"), (ip("::ffff:127.0.0.1"), Reason::Loopback));
        assert_eq!(refused_address("http://[::ffff:7f00:1]/"), (ip("::ffff:127.0.0.1"), Reason::Loopback));
        assert_eq!(refused_address("http://[64:ff9b::a00:1]/"), (ip("64:ff9b::a00:1"), Reason::Nat64));
        assert_eq!(refused_address("http://[2002:7f00:1::]/"), (ip("2002:7f00:1::"), Reason::SixToFour));
        assert_eq!(refused_address("http://[::127.0.0.1]/"), (ip("::7f00:1"), Reason::Ipv4Compatible));
        assert_eq!(refused_address("http://[::]/"), (ip("::"), Reason::Unspecified));
        assert_eq!(refused_address("http://[fd00:ec2::254]/"), (ip("fd00:ec2::254"), Reason::CloudMetadata));
        assert_eq!(refused_address("http://[fe80::1]/"), (ip("fe80::1"), Reason::LinkLocal));
        // Userinfo does not hide the host.
        assert_eq!(refused_address("https://1:2@[::1]:9876"), (ip("::1"), Reason::Loopback));
    }

    #[test]
    fn well_known_targets_are_refused_with_their_reason() {
        assert_eq!(refused_address("http://0.0.0.0/"), (ip("0.0.0.0"), Reason::Unspecified));
        assert_eq!(refused_address("http://0/"), (ip("0.0.0.0"), Reason::Unspecified));
        assert_eq!(
            refused_address("http://169.254.169.254/latest/meta-data/"),
            (ip("169.254.169.254"), Reason::CloudMetadata)
        );
        assert_eq!(refused_address("http://100.100.100.200/"), (ip("100.100.100.200"), Reason::CloudMetadata));
        assert_eq!(refused_address("http://100.64.1.1/"), (ip("100.64.1.1"), Reason::Cgnat));
        assert_eq!(refused_address("https://10.0.0.1:8443/hook"), (ip("10.0.0.1"), Reason::Private));
        assert_eq!(refused_address("http://255.255.255.255/"), (ip("255.255.255.255"), Reason::Broadcast));
    }

    #[test]
    fn localhost_names_are_refused_by_name_whatever_the_allow_list() {
        let guard = guard_allowing(&["127.0.0.0/8", "::1/128"]);
        for (url, name) in [
            ("http://localhost/", "localhost"),
            ("http://LOCALHOST.:8080/", "localhost"),
            ("https://api.localhost/hook", "api.localhost"),
            ("http://ｌｏｃａｌｈｏｓｔ/", "localhost"),
        ] {
            assert_eq!(guard.check_url(url, false), Err(Refusal::LocalName(name.into())), "{url}");
        }
        assert!(guard.check_url("https://localhost.example.com/", false).is_ok());
    }

    #[test]
    fn the_shape_of_the_url_is_checked() {
        let guard = Guard::default();
        assert!(matches!(guard.check_url("not a url", false), Err(Refusal::Malformed(_))));
        assert!(matches!(guard.check_url("http://exa mple.com/", false), Err(Refusal::Malformed(_))));
        assert_eq!(guard.check_url("ftp://example.com/", false), Err(Refusal::Scheme("ftp".into())));
        assert_eq!(guard.check_url("file:///etc/passwd", false), Err(Refusal::Scheme("file".into())));
        assert_eq!(guard.check_url("gopher://example.com/", false), Err(Refusal::Scheme("gopher".into())));
        assert_eq!(guard.check_url("http://example.com/", true), Err(Refusal::HttpsRequired));
        assert_eq!(guard.check_url("https://user:pw@example.com/", false), Err(Refusal::Credentials));
        assert_eq!(guard.check_url("https://user@example.com/", false), Err(Refusal::Credentials));
        assert_eq!(guard.check_url("https://example.com/hook#x", false), Err(Refusal::Fragment));
        assert_eq!(guard.check_url("https://example.com/hook#", false), Err(Refusal::Fragment));

        let longest = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN - "https://example.com/".len()));
        assert!(guard.check_url(&longest, true).is_ok());
        assert_eq!(guard.check_url(&format!("{longest}a"), true), Err(Refusal::TooLong { len: MAX_URL_LEN + 1 }));
    }

    #[test]
    fn public_urls_pass_in_normalised_form() {
        let guard = Guard::default();
        let url = guard.check_url("HTTPS://Example.COM:443/hooks?x=1", true).unwrap();
        assert_eq!(url.as_str(), "https://example.com/hooks?x=1");
        assert!(guard.check_url("http://93.184.215.14:8080/in", false).is_ok());
        assert!(guard.check_url("https://[2606:4700:4700::1111]/", true).is_ok());
        assert!(guard.check_url("https://[::ffff:8.8.8.8]/", true).is_ok());
    }

    #[test]
    fn the_allow_list_overrides_refusals_inside_it_only() {
        let guard = guard_allowing(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert!(guard.check_url("http://127.0.0.1:8080/hook", false).is_ok());
        assert!(guard.check_url("http://[::ffff:127.0.0.1]:8080/hook", false).is_ok());
        assert!(guard.check_ip(ip("10.20.30.40")).is_ok());
        assert_eq!(
            guard.check_url("http://127.0.0.2/", false),
            Err(Refusal::Address { ip: ip("127.0.0.2"), reason: Reason::Loopback })
        );
        assert_eq!(guard.check_ip(ip("::1")), Err(Refusal::Address { ip: ip("::1"), reason: Reason::Loopback }));
        assert_eq!(
            guard.check_ip(ip("169.254.169.254")),
            Err(Refusal::Address { ip: ip("169.254.169.254"), reason: Reason::CloudMetadata })
        );
    }

    #[test]
    fn refusals_read_as_sentences() {
        let metadata = Guard::default().check_url("http://169.254.169.254/", false).unwrap_err();
        assert_eq!(
            metadata.to_string(),
            "webhooks are not delivered to 169.254.169.254: it is a cloud metadata service address"
        );
        assert_eq!(metadata.reason().map(Reason::category), Some("cloud metadata"));
        let mapped = Guard::default().check_url("http://[::ffff:127.0.0.1]/", false).unwrap_err();
        assert_eq!(
            mapped.to_string(),
            "webhooks are not delivered to ::ffff:127.0.0.1: it is the IPv4-mapped form of 127.0.0.1, a loopback address"
        );
        let resolved = Refusal::ResolvesTo { host: "rebind.test".into(), ip: ip("10.0.0.1"), reason: Reason::Private };
        assert_eq!(
            resolved.to_string(),
            "webhooks are not delivered to rebind.test: it resolves to 10.0.0.1, a private network address"
        );
    }

    fn answering(ips: &[&str]) -> impl Fn(&str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> + Send + Sync + 'static {
        let ips: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
        move |_| futures_util::future::ready(Ok(ips.clone())).boxed()
    }

    async fn check_resolving_with_lookup(
        guard: &Guard,
        url: &str,
        lookup: impl Fn(&str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>,
    ) -> Result<Url, Refusal> {
        guard.check_url_resolving_with(url, false, lookup, Duration::from_millis(50)).await
    }

    #[tokio::test]
    async fn saving_refuses_a_name_when_any_of_its_addresses_is_refused() {
        let guard = Guard::default();
        assert_eq!(
            check_resolving_with_lookup(
                &guard,
                "https://hooks.example.com/",
                answering(&["93.184.215.14", "10.0.0.1"])
            )
            .await,
            Err(Refusal::ResolvesTo { host: "hooks.example.com".into(), ip: ip("10.0.0.1"), reason: Reason::Private })
        );
        let ok = check_resolving_with_lookup(
            &guard,
            "https://hooks.example.com/",
            answering(&["93.184.215.14", "2606:4700:4700::1111"]),
        )
        .await;
        assert!(ok.is_ok());
        let allowed = guard_allowing(&["10.0.0.0/8"]);
        assert!(
            check_resolving_with_lookup(&allowed, "https://hooks.example.com/", answering(&["10.0.0.1"])).await.is_ok()
        );
    }

    #[tokio::test]
    async fn saving_accepts_a_name_that_does_not_resolve_or_not_in_time() {
        let guard = Guard::default();
        let nxdomain = |_: &str| futures_util::future::ready(Err(io::Error::other("no such name"))).boxed();
        assert!(check_resolving_with_lookup(&guard, "https://not-yet.example.com/", nxdomain).await.is_ok());
        let never = |_: &str| futures_util::future::pending().boxed();
        assert!(check_resolving_with_lookup(&guard, "https://slow.example.com/", never).await.is_ok());
    }

    #[tokio::test]
    async fn saving_checks_literal_addresses_without_resolving() {
        let guard = Guard::default();
        let no_lookup = |host: &str| -> BoxFuture<'static, io::Result<Vec<IpAddr>>> { panic!("looked up {host}") };
        assert_eq!(
            check_resolving_with_lookup(&guard, "http://10.0.0.1/", no_lookup).await,
            Err(Refusal::Address { ip: ip("10.0.0.1"), reason: Reason::Private })
        );
        assert!(check_resolving_with_lookup(&guard, "http://93.184.215.14/", no_lookup).await.is_ok());
        assert_eq!(
            guard.check_url_resolving("http://localhost/", false).await,
            Err(Refusal::LocalName("localhost".into()))
        );
    }

    /// The guard's refusal somewhere in the chain of causes of a failed request.
    fn refusal_behind(error: &reqwest::Error) -> Option<Refusal> {
        std::iter::successors(error.source(), |&cause| cause.source())
            .find_map(|cause| cause.downcast_ref::<Refusal>())
            .cloned()
    }

    /// Accepts one connection within 200 ms, reads its request and answers 204.
    async fn serve_one(listener: &TcpListener) -> bool {
        serve_one_with(listener, "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await
    }

    async fn serve_one_with(listener: &TcpListener, response: &str) -> bool {
        let Ok(accepted) = timeout(Duration::from_millis(200), listener.accept()).await else { return false };
        let (mut socket, _) = accepted.unwrap();
        let mut request = Vec::new();
        let mut buf = [0; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-request");
            request.extend_from_slice(&buf[..n]);
        }
        socket.write_all(response.as_bytes()).await.unwrap();
        true
    }

    async fn accepts_nothing(listener: &TcpListener) -> bool {
        timeout(Duration::from_millis(200), listener.accept()).await.is_err()
    }

    async fn local_listener() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (listener, port)
    }

    /// A delivery client that opens a new connection (so resolves again) for every request, and
    /// gives up rather than hang if a broken guard lets it reach a listener that does not answer.
    fn client(resolver: GuardedResolver) -> reqwest::Client {
        resolver.client_builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(2)).build().unwrap()
    }

    #[tokio::test]
    async fn a_refused_resolved_address_fails_the_request_before_connecting() {
        let (listener, port) = local_listener().await;
        let client = client(GuardedResolver::with_lookup(Guard::default(), answering(&["127.0.0.1"])));

        let (response, nothing_accepted) =
            tokio::join!(client.get(format!("http://rebind.test:{port}/")).send(), accepts_nothing(&listener));

        assert!(nothing_accepted);
        assert_eq!(
            refusal_behind(&response.unwrap_err()),
            Some(Refusal::ResolvesTo { host: "rebind.test".into(), ip: ip("127.0.0.1"), reason: Reason::Loopback })
        );
    }

    #[tokio::test]
    async fn one_refused_address_among_allowed_ones_fails_the_request() {
        let (listener, port) = local_listener().await;
        // 127.0.0.2 is allowed (nothing listens there), the listener's 127.0.0.1 is not.
        let resolver =
            GuardedResolver::with_lookup(guard_allowing(&["127.0.0.2/32"]), answering(&["127.0.0.2", "127.0.0.1"]));

        let (response, nothing_accepted) = tokio::join!(
            client(resolver).get(format!("http://rebind.test:{port}/")).send(),
            accepts_nothing(&listener)
        );

        assert!(nothing_accepted);
        assert_eq!(
            refusal_behind(&response.unwrap_err()),
            Some(Refusal::ResolvesTo { host: "rebind.test".into(), ip: ip("127.0.0.1"), reason: Reason::Loopback })
        );
    }

    #[tokio::test]
    async fn a_name_rebound_between_lookups_is_refused_at_the_next_connection() {
        let (listener, port) = local_listener().await;
        let lookups = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&lookups);
        // First an allowed address, then a refused one, as a rebinding DNS server would answer.
        let rebinding = move |_: &str| {
            let answer = if counted.fetch_add(1, Ordering::SeqCst) == 0 { "127.0.0.1" } else { "127.0.0.9" };
            futures_util::future::ready(Ok(vec![ip(answer)])).boxed()
        };
        let client = client(GuardedResolver::with_lookup(guard_allowing(&["127.0.0.1/32"]), rebinding));
        let url = format!("http://rebind.test:{port}/");

        let (first, served) = tokio::join!(client.get(&url).send(), serve_one(&listener));
        assert!(served);
        assert_eq!(first.unwrap().status(), reqwest::StatusCode::NO_CONTENT);

        let (second, nothing_accepted) = tokio::join!(client.get(&url).send(), accepts_nothing(&listener));
        assert!(nothing_accepted);
        assert_eq!(
            refusal_behind(&second.unwrap_err()),
            Some(Refusal::ResolvesTo { host: "rebind.test".into(), ip: ip("127.0.0.9"), reason: Reason::Loopback })
        );
        assert_eq!(lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_allowed_resolved_address_is_delivered_to() {
        let (listener, port) = local_listener().await;
        let client = client(GuardedResolver::with_lookup(guard_allowing(&["127.0.0.1/32"]), answering(&["127.0.0.1"])));

        let (response, served) =
            tokio::join!(client.get(format!("http://rebind.test:{port}/")).send(), serve_one(&listener));

        assert!(served);
        assert_eq!(response.unwrap().status(), reqwest::StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn the_system_lookup_is_guarded_too() {
        // A numeric name resolves without asking any DNS server.
        let refused = Guard::default().resolver().resolve("127.0.0.1".parse().unwrap()).await;
        let error = refused.err().unwrap();
        assert_eq!(error.downcast_ref::<Refusal>().and_then(Refusal::reason), Some(Reason::Loopback));

        let allowed = guard_allowing(&["127.0.0.1/32"]).resolver().resolve("127.0.0.1".parse().unwrap()).await;
        let addrs: Vec<SocketAddr> = allowed.unwrap().collect();
        assert_eq!(addrs, vec![SocketAddr::new(ip("127.0.0.1"), 0)]);
    }

    /// Why `check_url` must run before every attempt: reqwest connects to literal addresses
    /// without asking the resolver. If this starts failing, reqwest has changed, not the guard.
    #[tokio::test]
    async fn reqwest_does_not_resolve_literal_addresses() {
        let (listener, port) = local_listener().await;
        let client = client(GuardedResolver::with_lookup(Guard::default(), |host: &str| panic!("looked up {host}")));

        let (response, served) =
            tokio::join!(client.get(format!("http://127.0.0.1:{port}/")).send(), serve_one(&listener));

        assert!(served);
        assert_eq!(response.unwrap().status(), reqwest::StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn the_delivery_client_does_not_follow_redirects() {
        let (receiver, port) = local_listener().await;
        let (internal, internal_port) = local_listener().await;
        let client = client(GuardedResolver::with_lookup(guard_allowing(&["127.0.0.1/32"]), answering(&["127.0.0.1"])));

        let redirect = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{internal_port}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let (response, served) =
            tokio::join!(client.get(format!("http://hooks.test:{port}/")).send(), serve_one_with(&receiver, &redirect));

        assert!(served);
        assert_eq!(response.unwrap().status(), reqwest::StatusCode::TEMPORARY_REDIRECT);
        assert!(accepts_nothing(&internal).await);
    }
}

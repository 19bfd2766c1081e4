//! `DnsDiscover` against a DNS server on loopback (hickory-server, in this
//! process) whose records change during the test: the balancer follows
//! them, learns only the differences, keeps its endpoints when the name
//! stops resolving, and takes SRV ports, weights and priorities.
#![cfg(feature = "dns")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

#[path = "support/events.rs"]
mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tower::{Service, ServiceExt, service_fn};
use tower_bulwark::balance::dns::DnsDiscover;
use tower_bulwark::balance::dns::hickory_resolver::TokioResolver;
use tower_bulwark::balance::dns::hickory_resolver::config::{NameServerConfig, ResolverConfig};
use tower_bulwark::balance::dns::hickory_resolver::net::runtime::TokioRuntimeProvider;
use tower_bulwark::balance::{BalanceConfig, BalanceEvent, LoadBalance, Strategy};

/// A DNS server for the zone `svc.test.` on a loopback UDP port.
struct Dns {
    zone: Arc<InMemoryZoneHandler>,
    port: u16,
    _server: hickory_server::Server<Catalog>,
}

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

impl Dns {
    async fn start() -> Dns {
        let origin = name("svc.test.");
        let zone = Arc::new(InMemoryZoneHandler::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        ));
        let soa = SOA::new(
            name("ns.svc.test."),
            name("admin.svc.test."),
            1,
            60,
            60,
            60,
            0,
        );
        zone.upsert(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1)
            .await;
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let mut server = hickory_server::Server::new(catalog);
        server.register_socket(socket);
        Dns {
            zone,
            port,
            _server: server,
        }
    }

    /// A resolver that asks this server only.
    fn resolver(&self) -> TokioResolver {
        let mut server = NameServerConfig::udp(Ipv4Addr::LOCALHOST.into());
        server.connections[0].port = self.port;
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        );
        builder.options_mut().timeout = Duration::from_millis(500);
        builder.build().unwrap()
    }

    /// Replaces the records of `owner` and `kind` with `data`, TTL 0.
    async fn set(&self, owner: &str, kind: RecordType, data: Vec<RData>) {
        let owner = name(owner);
        self.zone
            .records_mut()
            .await
            .remove(&RrKey::new(LowerName::new(&owner), kind));
        for rdata in data {
            let record = Record::from_rdata(owner.clone(), 0, rdata);
            assert!(self.zone.upsert(record, 1).await);
        }
    }

    /// The SRV records of `_http._tcp.users.svc.test.`.
    async fn users_srv(&self, records: Vec<RData>) {
        self.set("_http._tcp.users.svc.test.", RecordType::SRV, records)
            .await;
    }

    async fn a(&self, owner: &str, ips: &[[u8; 4]]) {
        let data = ips
            .iter()
            .map(|ip| RData::A(A(Ipv4Addr::from(*ip))))
            .collect();
        self.set(owner, RecordType::A, data).await;
    }
}

type Events = Arc<Mutex<Vec<BalanceEvent>>>;

fn balancer(
    discover: DnsDiscover<
        impl Service<(), Response = SocketAddr, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static,
    >,
    events: Events,
) -> LoadBalance<
    SocketAddr,
    impl Service<(), Response = SocketAddr, Error = Infallible, Future: Send> + Clone + Send + Sync,
> {
    LoadBalance::discover_weighted(
        BalanceConfig::default()
            .strategy(Strategy::RoundRobin)
            .no_outlier_detection()
            .events(&support::record_balance(events)),
        discover,
    )
    .unwrap()
}

fn echo(
    addr: SocketAddr,
) -> impl Service<(), Response = SocketAddr, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    service_fn(move |()| async move { Ok::<_, Infallible>(addr) })
}

/// Sends requests until the endpoints are `want` (address to weight), for
/// at most 5 s; every request is answered by an endpoint of the set at the
/// time. Returns how many requests were answered.
async fn until_endpoints<S>(lb: &mut LoadBalance<SocketAddr, S>, want: &[(&str, u32)]) -> usize
where
    S: Service<(), Response = SocketAddr, Error = Infallible> + Clone + Send + Sync + 'static,
{
    let want: BTreeMap<SocketAddr, u32> =
        want.iter().map(|(a, w)| (a.parse().unwrap(), *w)).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    loop {
        let service = lb.ready().await.expect("ready");
        match service.call(()).await {
            Ok(_) => sent += 1,
            // Before the first answer the set is empty, and a request
            // fails at once rather than hang; never once it has endpoints.
            Err(error) => assert!(lb.endpoints().is_empty(), "a request failed: {error}"),
        }
        let have: BTreeMap<SocketAddr, u32> = lb
            .endpoints()
            .into_iter()
            .map(|e| (e.key, e.weight))
            .collect();
        if have == want {
            return sent;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "endpoints {have:?}, waiting for {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn count(events: &Events, added: bool) -> usize {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| match e {
            BalanceEvent::EndpointAdded { .. } => added,
            BalanceEvent::EndpointRemoved { .. } => !added,
            _ => false,
        })
        .count()
}

#[tokio::test]
async fn a_records_are_followed_as_they_change_and_kept_when_the_name_fails() {
    let dns = Dns::start().await;
    dns.a("users.svc.test.", &[[127, 0, 0, 1], [127, 0, 0, 2]])
        .await;
    let events = Events::default();
    let discover = DnsDiscover::ip(dns.resolver(), "users.svc.test.", 8080, echo)
        .refresh(Duration::from_millis(20), Duration::from_millis(200))
        .unwrap();
    let mut lb = balancer(discover, events.clone());

    until_endpoints(&mut lb, &[("127.0.0.1:8080", 1), ("127.0.0.2:8080", 1)]).await;
    dns.a("users.svc.test.", &[[127, 0, 0, 1], [127, 0, 0, 3]])
        .await;
    until_endpoints(&mut lb, &[("127.0.0.1:8080", 1), ("127.0.0.3:8080", 1)]).await;
    // Only the differences: 127.0.0.1 was added once, never replaced.
    assert_eq!(count(&events, true), 3);
    assert_eq!(count(&events, false), 1);

    // The name stops resolving: the endpoints stay, the failures are
    // reported, and requests go on.
    dns.set("users.svc.test.", RecordType::A, vec![]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, BalanceEvent::DiscoveryFailed { .. }))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no DiscoveryFailed event"
        );
        lb.ready().await.unwrap().call(()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failure = events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            BalanceEvent::DiscoveryFailed { error, .. } => Some(error.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(failure.contains("users.svc.test."), "{failure}");
    let kept: Vec<SocketAddr> = lb.endpoints().into_iter().map(|e| e.key).collect();
    assert_eq!(kept.len(), 2, "{kept:?}");

    // It resolves again.
    dns.a("users.svc.test.", &[[127, 0, 0, 4]]).await;
    until_endpoints(&mut lb, &[("127.0.0.4:8080", 1)]).await;
}

#[tokio::test]
async fn srv_records_give_ports_and_weights_and_backups_wait() {
    let dns = Dns::start().await;
    let srv = |priority, weight, port, target: &str| {
        RData::SRV(SRV::new(priority, weight, port, name(target)))
    };
    dns.a("a.svc.test.", &[[127, 0, 0, 1]]).await;
    dns.a("b.svc.test.", &[[127, 0, 0, 2]]).await;
    dns.a("backup.svc.test.", &[[127, 0, 0, 9]]).await;
    dns.users_srv(vec![
        srv(0, 5, 8081, "a.svc.test."),
        srv(0, 1, 8082, "b.svc.test."),
        srv(10, 100, 8089, "backup.svc.test."),
    ])
    .await;
    let events = Events::default();
    let discover = DnsDiscover::srv(dns.resolver(), "_http._tcp.users.svc.test.", echo)
        .refresh(Duration::from_millis(20), Duration::from_millis(200))
        .unwrap();
    let mut lb = balancer(discover, events.clone());
    until_endpoints(&mut lb, &[("127.0.0.1:8081", 5), ("127.0.0.2:8082", 1)]).await;

    // A weight changes; then the first priority is gone and the backup
    // takes over.
    dns.users_srv(vec![
        srv(0, 5, 8081, "a.svc.test."),
        srv(0, 3, 8082, "b.svc.test."),
        srv(10, 100, 8089, "backup.svc.test."),
    ])
    .await;
    until_endpoints(&mut lb, &[("127.0.0.1:8081", 5), ("127.0.0.2:8082", 3)]).await;
    dns.users_srv(vec![srv(10, 100, 8089, "backup.svc.test.")])
        .await;
    until_endpoints(&mut lb, &[("127.0.0.9:8089", 100)]).await;
}

#[test]
fn refresh_bounds_are_checked() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let resolver = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![]),
        TokioRuntimeProvider::default(),
    )
    .build()
    .unwrap();
    let discover = || DnsDiscover::ip(resolver.clone(), "users.svc.test.", 80, echo);
    let error = discover()
        .refresh(Duration::ZERO, Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(error.field(), "refresh.min");
    let error = discover()
        .refresh(Duration::from_secs(2), Duration::from_secs(1))
        .unwrap_err();
    assert_eq!(error.field(), "refresh.max");
    assert!(error.to_string().contains("refresh.min"), "{error}");
}

/// The whole stack over the endpoints of SRV records.
#[cfg(feature = "stack")]
#[tokio::test]
async fn the_stack_takes_its_endpoints_from_dns() {
    use tower_bulwark::stack::{ResilienceConfig, ResilienceLayer};

    let dns = Dns::start().await;
    dns.a("a.svc.test.", &[[127, 0, 0, 1]]).await;
    dns.set(
        "_grpc._tcp.users.svc.test.",
        RecordType::SRV,
        vec![RData::SRV(SRV::new(0, 7, 9000, name("a.svc.test.")))],
    )
    .await;
    let discover = DnsDiscover::srv(dns.resolver(), "_grpc._tcp.users.svc.test.", echo)
        .refresh(Duration::from_millis(20), Duration::from_millis(200))
        .unwrap();
    let mut svc = ResilienceLayer::<(), SocketAddr>::new(ResilienceConfig::default())
        .unwrap()
        .discover_weighted(discover)
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let answer = loop {
        // Until the first answer the set is empty, and calls fail at once.
        if let Ok(answer) = svc.ready().await.unwrap().call(()).await {
            break answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no endpoint from DNS"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(answer, "127.0.0.1:9000".parse::<SocketAddr>().unwrap());
}

//! Sample data for the simulated tenant: a small shop (frontend, cart, checkout, payment,
//! inventory…) on two Kubernetes clusters, with logs, spans, Davis problems and the events Davis
//! used as their evidence, Kubernetes and deployment events, entities and Smartscape nodes,
//! vulnerabilities (`security.events`), RUM events with JavaScript exceptions (`user.events`),
//! Grail buckets (`dt.system.buckets`) and synthetic metric series (`timeseries`).
//!
//! Records are generated on demand from their index with a fixed seed, so the data is the same
//! in every run (relative to the tenant's start time) and 10,000-record queries cost no storage.
//! Values follow Grail's JSON encoding: longs and durations are strings, timestamps are RFC 3339
//! with nanoseconds.

use serde_json::{Map, Value, json};

use super::dql::{Catalog, DataRef, Source, format_time};

const SECOND: i128 = 1_000_000_000;

pub struct Host {
    pub id: &'static str,
    pub name: &'static str,
    pub cluster: usize,
}

pub struct Service {
    pub id: &'static str,
    pub name: &'static str,
    pub host: usize,
    pub namespace: &'static str,
}

pub struct Cluster {
    pub id: &'static str,
    pub name: &'static str,
    pub uid: &'static str,
}

pub const CLUSTERS: &[Cluster] = &[
    Cluster {
        id: "KUBERNETES_CLUSTER-5A1E7B3C9D2F4E6A",
        name: "prod-eu-west-1",
        uid: "0f6c2b7e-3a41-4c55-9d0e-6b8f1a2c3d4e",
    },
    Cluster {
        id: "KUBERNETES_CLUSTER-7C3D9E1F2A4B6C8D",
        name: "staging-us-east-1",
        uid: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
    },
];

pub const HOSTS: &[Host] = &[
    Host {
        id: "HOST-8CCED98AFA59084C",
        name: "ip-10-0-1-17.eu-west-1.compute.internal",
        cluster: 0,
    },
    Host {
        id: "HOST-1F2E3D4C5B6A7980",
        name: "ip-10-0-2-41.eu-west-1.compute.internal",
        cluster: 0,
    },
    Host {
        id: "HOST-A0B1C2D3E4F56789",
        name: "ip-10-0-3-88.eu-west-1.compute.internal",
        cluster: 0,
    },
    Host {
        id: "HOST-3C4D5E6F7A8B9C0D",
        name: "ip-10-8-1-12.ec2.internal",
        cluster: 1,
    },
];

pub const SERVICES: &[Service] = &[
    Service {
        id: "SERVICE-0B3E2C2F7E1F5A01",
        name: "frontend",
        host: 0,
        namespace: "shop",
    },
    Service {
        id: "SERVICE-1C4F3D3A8F2A6B12",
        name: "cart-service",
        host: 0,
        namespace: "shop",
    },
    Service {
        id: "SERVICE-2D5A4E4B9A3B7C23",
        name: "checkout-service",
        host: 1,
        namespace: "shop",
    },
    Service {
        id: "SERVICE-3E6B5F5CAB4C8D34",
        name: "payment-service",
        host: 1,
        namespace: "payments",
    },
    Service {
        id: "SERVICE-4F7C6A6DBC5D9E45",
        name: "inventory-service",
        host: 2,
        namespace: "shop",
    },
    Service {
        id: "SERVICE-5A8D7B7ECD6EAF56",
        name: "auth-service",
        host: 2,
        namespace: "identity",
    },
    Service {
        id: "SERVICE-6B9E8C8FDE7FBA67",
        name: "frontend",
        host: 3,
        namespace: "shop-staging",
    },
];

/// splitmix64: a fixed, well-mixed pseudo-random sequence.
pub(super) fn mix(index: usize, salt: u64) -> u64 {
    let mut z = (index as u64).wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<T>(items: &[T], index: usize, salt: u64) -> &T {
    &items[(mix(index, salt) % items.len() as u64) as usize]
}

fn hex(index: usize, salt: u64, len: usize) -> String {
    let mut out = String::new();
    let mut n = 0;
    while out.len() < len {
        out.push_str(&format!("{:016x}", mix(index, salt + n)));
        n += 1;
    }
    out.truncate(len);
    out
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

type Maker = fn(usize, i128) -> Map<String, Value>;

/// A data object: how many records, and how record `i` looks.
pub struct Generated {
    len: usize,
    now: i128,
    make: Maker,
}

impl Source for Generated {
    fn len(&self) -> usize {
        self.len
    }

    fn record(&self, index: usize) -> Map<String, Value> {
        (self.make)(index, self.now)
    }
}

/// The data object a `fetch` names, or `None` when this tenant has no such object.
pub fn source(name: &str, now: i128, log_records: usize) -> Option<Box<dyn Source>> {
    let (len, make): (usize, Maker) = match name {
        "logs" => (log_records, log),
        "spans" => (5_000, span),
        "dt.davis.problems" => (PROBLEMS.len(), problem),
        "events" => (EVENT_COUNT, event),
        "dt.entity.host" => (HOSTS.len(), host),
        "dt.entity.service" => (SERVICES.len(), service),
        "dt.entity.kubernetes_cluster" => (CLUSTERS.len(), cluster),
        "dt.entity.process_group" => (SERVICES.len(), process_group),
        "dt.system.buckets" => (BUCKETS.len(), bucket),
        "user.events" => (USER_EVENT_COUNT, user_event),
        "security.events" => return Some(Box::new(Rows(security_events(now)))),
        "bizevents" | "dt.system.events" => return Some(Box::new(Rows(Vec::new()))),
        s if EMPTY_ENTITY_TYPES.contains(&s) => return Some(Box::new(Rows(Vec::new()))),
        _ => return None,
    };
    Some(Box::new(Generated { len, now, make }))
}

/// Names of the data objects, for error messages.
pub const SOURCES: &[&str] = &[
    "logs",
    "spans",
    "events",
    "bizevents",
    "security.events",
    "user.events",
    "dt.davis.problems",
    "dt.system.buckets",
    "dt.system.events",
    "dt.entity.host",
    "dt.entity.service",
    "dt.entity.process_group",
    "dt.entity.kubernetes_cluster",
    "(and the other dt.entity.* types)",
];

/// Entity types a real tenant knows that this one has no entities of.
const EMPTY_ENTITY_TYPES: &[&str] = &[
    "dt.entity.application",
    "dt.entity.aws_application_load_balancer",
    "dt.entity.aws_availability_zone",
    "dt.entity.aws_lambda_function",
    "dt.entity.aws_network_load_balancer",
    "dt.entity.azure_vm",
    "dt.entity.cloud_application",
    "dt.entity.cloud_application_instance",
    "dt.entity.cloud_application_namespace",
    "dt.entity.container_group",
    "dt.entity.container_group_instance",
    "dt.entity.custom_application",
    "dt.entity.custom_device",
    "dt.entity.custom_device_group",
    "dt.entity.disk",
    "dt.entity.docker_container_group_instance",
    "dt.entity.ec2_instance",
    "dt.entity.environment",
    "dt.entity.gcp_zone",
    "dt.entity.geolocation",
    "dt.entity.host_group",
    "dt.entity.kubernetes_node",
    "dt.entity.kubernetes_service",
    "dt.entity.mobile_application",
    "dt.entity.network_interface",
    "dt.entity.openstack_vm",
    "dt.entity.os",
    "dt.entity.process_group_instance",
    "dt.entity.relational_database_service",
    "dt.entity.service_instance",
    "dt.entity.synthetic_location",
    "dt.entity.synthetic_test",
];

/// A data object held in memory.
pub struct Rows(pub Vec<Map<String, Value>>);

impl Source for Rows {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn record(&self, index: usize) -> Map<String, Value> {
        self.0[index].clone()
    }
}

/// Records held elsewhere (events ingested through the API), then a generated object.
struct Chain<'a> {
    first: &'a [Map<String, Value>],
    rest: Box<dyn Source>,
}

impl Source for Chain<'_> {
    fn len(&self) -> usize {
        self.first.len() + self.rest.len()
    }

    fn record(&self, index: usize) -> Map<String, Value> {
        match self.first.get(index) {
            Some(record) => record.clone(),
            None => self.rest.record(index - self.first.len()),
        }
    }
}

/// The tenant's data as the DQL interpreter sees it.
pub struct Tenant<'a> {
    pub now: i128,
    pub log_records: usize,
    /// Events ingested through the events API, newest first; `fetch events` returns them too.
    pub ingested_events: &'a [Map<String, Value>],
    /// How many of [`PROBLEMS`] this tenant has (tenants of a multi-environment test differ).
    pub problems: usize,
}

/// The first `len` records of a source.
struct Limited {
    inner: Box<dyn Source>,
    len: usize,
}

impl Source for Limited {
    fn len(&self) -> usize {
        self.len.min(self.inner.len())
    }

    fn record(&self, index: usize) -> Map<String, Value> {
        self.inner.record(index)
    }
}

impl Catalog for Tenant<'_> {
    fn open(&self, data: &DataRef) -> Option<Box<dyn Source + '_>> {
        match data {
            DataRef::Fetch(name) if name == "dt.davis.problems" => Some(Box::new(Limited {
                inner: source(name, self.now, self.log_records)?,
                len: self.problems,
            })),
            DataRef::Fetch(name) if name == "events" => Some(Box::new(Chain {
                first: self.ingested_events,
                rest: source(name, self.now, self.log_records)?,
            })),
            DataRef::Fetch(name) => {
                source(name, self.now, self.log_records).map(|s| s as Box<dyn Source + '_>)
            }
            DataRef::SmartscapeNodes(types) => Some(Box::new(Rows(smartscape_nodes(types)))),
            // Every metric key exists (its series are synthesized by `timeseries`).
            DataRef::Metrics(_) => Some(Box::new(Rows(Vec::new()))),
        }
    }
}

/// The display name of an entity id (`entityName()`).
pub fn entity_name(id: &str) -> Option<String> {
    if let Some(h) = HOSTS.iter().find(|h| h.id == id) {
        return Some(h.name.to_string());
    }
    if let Some(s) = SERVICES.iter().find(|s| s.id == id) {
        return Some(s.name.to_string());
    }
    if let Some(c) = CLUSTERS.iter().find(|c| c.id == id) {
        return Some(c.name.to_string());
    }
    (0..SERVICES.len())
        .find(|&i| process_group_id(i) == id)
        .map(|i| format!("{} (java)", SERVICES[i].name))
}

struct LogTemplate {
    level: &'static str,
    text: &'static str,
}

const LOG_TEMPLATES: &[LogTemplate] = &[
    LogTemplate {
        level: "INFO",
        text: "GET /api/products 200 in {ms} ms",
    },
    LogTemplate {
        level: "INFO",
        text: "POST /api/cart/items 201 in {ms} ms",
    },
    LogTemplate {
        level: "INFO",
        text: "order {id} placed, 3 items, total 84.20 EUR",
    },
    LogTemplate {
        level: "INFO",
        text: "cache hit ratio 0.{ms}",
    },
    LogTemplate {
        level: "DEBUG",
        text: "refreshing feature flags from config service",
    },
    LogTemplate {
        level: "WARN",
        text: "slow query on inventory: {ms} ms for SELECT stock FROM items WHERE sku = ?",
    },
    LogTemplate {
        level: "WARN",
        text: "retrying call to payment-service (attempt 2 of 3)",
    },
    LogTemplate {
        level: "ERROR",
        text: "connection refused: payment-db.payments.svc:5432",
    },
    LogTemplate {
        level: "ERROR",
        text: "timeout after 3000 ms calling inventory-service GET /stock/{id}",
    },
    LogTemplate {
        level: "ERROR",
        text: "java.lang.OutOfMemoryError: Java heap space in worker-pool-{ms}",
    },
    LogTemplate {
        level: "INFO",
        text: "user {id} logged in",
    },
    LogTemplate {
        level: "INFO",
        text: "health check ok",
    },
];

fn log(index: usize, now: i128) -> Map<String, Value> {
    // Newest first, one record every 0.36 s over two hours (for 20,000 records).
    let at = now - (index as i128) * 360_000_000 - (mix(index, 1) % 300_000_000) as i128;
    let template = pick(LOG_TEMPLATES, index, 2);
    let service_index = (mix(index, 3) % SERVICES.len() as u64) as usize;
    let service = &SERVICES[service_index];
    let host = &HOSTS[service.host];
    let cluster = &CLUSTERS[host.cluster];
    let ms = 5 + mix(index, 4) % 900;
    let content = template
        .text
        .replace("{ms}", &ms.to_string())
        .replace("{id}", &hex(index, 5, 8));
    object(json!({
        "timestamp": format_time(at),
        "content": content,
        "loglevel": template.level,
        "status": template.level,
        "log.source": format!("/var/log/containers/{}-{}.log", service.name, hex(service_index, 6, 5)),
        "host.name": host.name,
        "dt.entity.host": host.id,
        "service.name": service.name,
        "dt.entity.service": service.id,
        "k8s.cluster.name": cluster.name,
        "k8s.namespace.name": service.namespace,
        "k8s.pod.name": format!("{}-{}-{}", service.name, hex(service_index, 7, 10), hex(index % 3, 8, 5)),
        "trace_id": hex(index / 4, 9, 32),
        "span_id": hex(index, 10, 16),
        "dt.security_context": service.namespace,
        "dt.system.bucket": if service.namespace == "payments" { "team_payments_logs" } else { "default_logs" },
    }))
}

fn span(index: usize, now: i128) -> Map<String, Value> {
    let service_index = (mix(index, 11) % SERVICES.len() as u64) as usize;
    let service = &SERVICES[service_index];
    let routes = [
        "/api/products",
        "/api/cart",
        "/api/checkout",
        "/api/pay",
        "/api/stock/{sku}",
        "/login",
    ];
    let route = pick(&routes, index, 12);
    let duration_ns = 2_000_000 + (mix(index, 13) % 400_000_000) as i128;
    let failed = mix(index, 14) % 20 == 0;
    let end = now - (index as i128) * 1_400_000_000;
    object(json!({
        "timestamp": format_time(end - duration_ns),
        "start_time": format_time(end - duration_ns),
        "end_time": format_time(end),
        "duration": duration_ns.to_string(),
        "trace_id": hex(index / 3, 9, 32),
        "span_id": hex(index, 15, 16),
        "parent_span_id": if index % 3 == 0 { Value::Null } else { Value::String(hex(index - 1, 15, 16)) },
        "span.name": format!("{} {route}", if index % 4 == 0 { "POST" } else { "GET" }),
        "span.kind": if index % 3 == 0 { "server" } else { "client" },
        "service.name": service.name,
        "dt.entity.service": service.id,
        "http.request.method": if index % 4 == 0 { "POST" } else { "GET" },
        "http.route": route,
        "http.response.status_code": if failed { "500" } else { "200" },
        "request.is_failed": failed,
    }))
}

pub struct Problem {
    pub name: &'static str,
    pub category: &'static str,
    pub active: bool,
    pub age_minutes: i128,
    pub duration_minutes: i128,
    pub root_cause: usize,
    pub affected: &'static [usize],
    pub users: u32,
    pub description: &'static str,
}

/// Davis problems; entity indices point into [`SERVICES`].
pub const PROBLEMS: &[Problem] = &[
    Problem {
        name: "Failure rate increase on payment-service",
        category: "ERROR",
        active: true,
        age_minutes: 18,
        duration_minutes: 18,
        root_cause: 3,
        affected: &[3, 2, 0],
        users: 214,
        description: "The failure rate of POST /api/pay rose from 0.4 % to 12.8 %. Root cause: connection refused to payment-db.",
    },
    Problem {
        name: "Response time degradation on inventory-service",
        category: "SLOWDOWN",
        active: true,
        age_minutes: 42,
        duration_minutes: 42,
        root_cause: 4,
        affected: &[4, 1],
        users: 87,
        description: "Median response time of GET /stock/{sku} rose from 35 ms to 1.9 s after a slow database query appeared.",
    },
    Problem {
        name: "Memory saturation on checkout-service pods",
        category: "RESOURCE_CONTENTION",
        active: true,
        age_minutes: 95,
        duration_minutes: 95,
        root_cause: 2,
        affected: &[2],
        users: 0,
        description: "JVM heap usage above 95 % for 30 minutes; OutOfMemoryError logged.",
    },
    Problem {
        name: "Service unavailable: auth-service",
        category: "AVAILABILITY",
        active: false,
        age_minutes: 300,
        duration_minutes: 12,
        root_cause: 5,
        affected: &[5, 0],
        users: 1302,
        description: "All instances of auth-service were unreachable during a rolling deployment.",
    },
    Problem {
        name: "Failure rate increase on frontend",
        category: "ERROR",
        active: false,
        age_minutes: 520,
        duration_minutes: 25,
        root_cause: 0,
        affected: &[0],
        users: 455,
        description: "HTTP 502 answers from frontend after a configuration change.",
    },
    Problem {
        name: "Response time degradation on cart-service",
        category: "SLOWDOWN",
        active: false,
        age_minutes: 780,
        duration_minutes: 9,
        root_cause: 1,
        affected: &[1],
        users: 33,
        description: "A cache flush caused cold reads for 9 minutes.",
    },
    Problem {
        name: "Custom alert: order volume dropped",
        category: "CUSTOM_ALERT",
        active: false,
        age_minutes: 1100,
        duration_minutes: 31,
        root_cause: 2,
        affected: &[2],
        users: 0,
        description: "Orders per minute fell below the expected band.",
    },
    Problem {
        name: "Pod crash loop in shop-staging",
        category: "AVAILABILITY",
        active: false,
        age_minutes: 1300,
        duration_minutes: 48,
        root_cause: 6,
        affected: &[6],
        users: 0,
        description: "frontend pods restarted 14 times: image pull of a missing tag.",
    },
];

fn problem_id(index: usize) -> String {
    format!(
        "{}_{}V2",
        mix(index, 20) % 9_000_000_000_000_000_000 + 1_000_000_000_000_000_000,
        1_764_000_000_000 + index as u64
    )
}

/// The display id of problem `index` (`P-24113…`).
pub fn display_id(index: usize) -> String {
    format!("P-2411{:03}", 120 + index * 7)
}

fn problem(index: usize, now: i128) -> Map<String, Value> {
    let p = &PROBLEMS[index];
    let start = now - p.age_minutes * 60 * SECOND;
    let end = if p.active {
        None
    } else {
        Some(start + p.duration_minutes * 60 * SECOND)
    };
    let root = &SERVICES[p.root_cause];
    let affected: Vec<&str> = p.affected.iter().map(|&i| SERVICES[i].id).collect();
    let affected_names: Vec<&str> = p.affected.iter().map(|&i| SERVICES[i].name).collect();
    let duration = end.unwrap_or(now) - start;
    object(json!({
        "timestamp": format_time(end.unwrap_or(start)),
        "event.id": problem_id(index),
        "problem_id": problem_id(index),
        "display_id": display_id(index),
        "event.kind": "DAVIS_PROBLEM",
        "event.name": p.name,
        "event.description": p.description,
        "event.status": if p.active { "ACTIVE" } else { "CLOSED" },
        "event.status_transition": if p.active { "CREATED" } else { "RESOLVED" },
        "event.category": p.category,
        "event.start": format_time(start),
        "event.end": end.map(format_time),
        "duration": duration.to_string(),
        "root_cause_entity_id": root.id,
        "root_cause_entity_name": root.name,
        "affected_entity_ids": affected,
        "affected_entity_names": affected_names,
        "affected_entity_count": p.affected.len().to_string(),
        "affected_entity_types": vec!["dt.entity.service"; p.affected.len()],
        "affected_users_count": p.users.to_string(),
        "dt.davis.affected_users_count": p.users.to_string(),
        "dt.davis.event_ids": evidence_indices(index).iter().map(|&i| event_id(i)).collect::<Vec<_>>(),
        "dt.davis.is_duplicate": false,
        "dt.davis.mute.status": "NOT_MUTED",
        "entity_tags": service_tags(p.root_cause),
        "labels.alerting_profile": ["Default"],
        "maintenance.is_under_maintenance": false,
        "k8s.cluster.name": CLUSTERS[HOSTS[root.host].cluster].name,
        "k8s.cluster.uid": CLUSTERS[HOSTS[root.host].cluster].uid,
        "k8s.namespace.name": root.namespace,
    }))
}

/// How many records `fetch events` holds: one every three minutes over a day.
const EVENT_COUNT: usize = 480;
const EVENT_SPACING: i128 = 180 * SECOND;

fn event_id(index: usize) -> String {
    hex(index, 32, 20)
}

/// The events (indices into `fetch events`) Davis used as evidence for problem `problem`: the
/// one at the problem's start and the one three minutes before.
fn evidence_indices(problem: usize) -> [usize; 2] {
    let first = (PROBLEMS[problem].age_minutes * 60 * SECOND / EVENT_SPACING) as usize;
    [first, first + 1]
}

/// The problem an event is evidence for, and whether it is the first of its two events.
fn evidence_of(index: usize) -> Option<(usize, bool)> {
    (0..PROBLEMS.len()).find_map(|p| {
        let [a, b] = evidence_indices(p);
        if index == a {
            Some((p, true))
        } else if index == b {
            Some((p, false))
        } else {
            None
        }
    })
}

fn event(index: usize, now: i128) -> Map<String, Value> {
    // (event.kind, event.type, event.name, k8s severity, minutes a Davis event lasts)
    let kinds: [(&str, &str, &str, &str, i128); 11] = [
        ("K8S_EVENT", "K8S_EVENT", "Pod started", "Normal", 0),
        (
            "K8S_EVENT",
            "K8S_EVENT",
            "Back-off restarting failed container",
            "Warning",
            0,
        ),
        (
            "K8S_EVENT",
            "K8S_EVENT",
            "Scaled up replica set",
            "Normal",
            0,
        ),
        (
            "K8S_EVENT",
            "K8S_EVENT",
            "Liveness probe failed",
            "Warning",
            0,
        ),
        (
            "INFO_EVENT",
            "CUSTOM_DEPLOYMENT",
            "Deployment of release 2026.11.3",
            "Normal",
            0,
        ),
        (
            "INFO_EVENT",
            "CUSTOM_INFO",
            "Feature flag checkout-v2 enabled",
            "Normal",
            0,
        ),
        (
            "DAVIS_EVENT",
            "PROCESS_RESTART",
            "Process restart",
            "Warning",
            2,
        ),
        (
            "DAVIS_EVENT",
            "RESOURCE_CONTENTION_EVENT",
            "Memory saturation",
            "Warning",
            25,
        ),
        (
            "DAVIS_EVENT",
            "ERROR_EVENT",
            "Failure rate increase",
            "Warning",
            15,
        ),
        (
            "DAVIS_EVENT",
            "PERFORMANCE_EVENT",
            "Response time degradation",
            "Warning",
            20,
        ),
        (
            "DAVIS_EVENT",
            "AVAILABILITY_EVENT",
            "Process unavailable",
            "Warning",
            10,
        ),
    ];
    let at = now - (index as i128) * EVENT_SPACING;
    let (kind, event_type, name, severity, minutes, service, end, problem) =
        match evidence_of(index) {
            Some((p, first)) => {
                let problem = &PROBLEMS[p];
                let event_type = match (problem.category, first) {
                    ("ERROR", _) => "ERROR_EVENT",
                    ("SLOWDOWN", _) => "PERFORMANCE_EVENT",
                    ("RESOURCE_CONTENTION", _) => "RESOURCE_CONTENTION_EVENT",
                    ("AVAILABILITY", true) => "AVAILABILITY_EVENT",
                    ("AVAILABILITY", false) => "PROCESS_RESTART",
                    _ => "CUSTOM_ALERT",
                };
                let service = if first {
                    problem.root_cause
                } else {
                    problem.affected[problem.affected.len() - 1]
                };
                let end = if problem.active {
                    None
                } else {
                    Some(now - (problem.age_minutes - problem.duration_minutes) * 60 * SECOND)
                };
                let kind = kinds.iter().find(|k| k.1 == event_type);
                (
                    "DAVIS_EVENT",
                    event_type,
                    kind.map(|k| k.2).unwrap_or(problem.name),
                    "Warning",
                    problem.duration_minutes,
                    &SERVICES[service],
                    end,
                    Some(p),
                )
            }
            None => {
                let (kind, event_type, name, severity, minutes) = *pick(&kinds, index, 30);
                let service = pick(SERVICES, index, 31);
                let end = if minutes == 0 {
                    Some(at)
                } else if at + minutes * 60 * SECOND > now {
                    None
                } else {
                    Some(at + minutes * 60 * SECOND)
                };
                (
                    kind, event_type, name, severity, minutes, service, end, None,
                )
            }
        };
    let _ = minutes;
    let host = &HOSTS[service.host];
    let cluster = &CLUSTERS[host.cluster];
    let k8s = kind == "K8S_EVENT";
    let mut record = object(json!({
        "timestamp": format_time(at),
        "event.id": event_id(index),
        "event.kind": kind,
        "event.type": event_type,
        "event.name": if kind == "DAVIS_EVENT" { format!("{name} on {}", service.name) } else { name.to_string() },
        "event.provider": if k8s { "KUBERNETES" } else if kind == "DAVIS_EVENT" { "DAVIS" } else { "API" },
        "event.status": if end.is_none() { "ACTIVE" } else { "CLOSED" },
        "event.start": format_time(at),
        "event.end": end.map(format_time),
        "duration": (end.unwrap_or(now) - at).to_string(),
        "k8s.cluster.name": cluster.name,
        "k8s.cluster.uid": cluster.uid,
        "dt.entity.kubernetes_cluster": cluster.id,
        "k8s.namespace.name": service.namespace,
        "k8s.pod.name": format!("{}-{}", service.name, hex(index % 5, 33, 10)),
        "dt.entity.service": service.id,
        "dt.entity.service.name": service.name,
        "dt.system.bucket": "default_events",
    }));
    if k8s {
        record.insert("k8s.event.severity".into(), json!(severity));
        record.insert(
            "k8s.event.reason".into(),
            json!(match name {
                "Pod started" => "Started",
                "Back-off restarting failed container" => "BackOff",
                "Scaled up replica set" => "ScalingReplicaSet",
                _ => "Unhealthy",
            }),
        );
    }
    if let Some(p) = problem {
        record.insert("dt.davis.problem_ids".into(), json!([problem_id(p)]));
        record.insert("dt.davis.display_ids".into(), json!([display_id(p)]));
    }
    record
}

fn host(index: usize, _now: i128) -> Map<String, Value> {
    let h = &HOSTS[index];
    object(json!({
        "id": h.id,
        "entity.name": h.name,
        "entity.type": "HOST",
        "osType": "LINUX",
        "cloudType": "EC2",
        "k8s.cluster.name": CLUSTERS[h.cluster].name,
        "tags": [format!("env:{}", if h.cluster == 0 { "prod" } else { "staging" }), "team:platform".to_string()],
    }))
}

fn service(index: usize, _now: i128) -> Map<String, Value> {
    let s = &SERVICES[index];
    object(json!({
        "id": s.id,
        "entity.name": s.name,
        "entity.type": "SERVICE",
        "serviceType": "WEB_REQUEST_SERVICE",
        "k8s.namespace.name": s.namespace,
        "runs_on.host": HOSTS[s.host].id,
        "tags": service_tags(index),
    }))
}

fn process_group_id(index: usize) -> String {
    format!("PROCESS_GROUP-{}", hex(index, 40, 16).to_uppercase())
}

fn process_group(index: usize, _now: i128) -> Map<String, Value> {
    let s = &SERVICES[index];
    object(json!({
        "id": process_group_id(index),
        "entity.name": format!("{} (java)", s.name),
        "entity.type": "PROCESS_GROUP",
        "runs.service": s.id,
    }))
}

fn cluster(index: usize, _now: i128) -> Map<String, Value> {
    let c = &CLUSTERS[index];
    object(json!({
        "id": c.id,
        "entity.name": c.name,
        "entity.type": "KUBERNETES_CLUSTER",
        "k8s.cluster.uid": c.uid,
        "tags": [format!("env:{}", if index == 0 { "prod" } else { "staging" })],
    }))
}

/// A monitored entity as the classic entity selector sees it.
pub struct ClassicEntity {
    /// `HOST`, `SERVICE`, `PROCESS_GROUP`, `KUBERNETES_CLUSTER`
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// The Grail field naming an entity of this type (`dt.entity.service`).
    pub field: &'static str,
}

/// Every monitored entity of the sample tenant.
pub fn classic_entities() -> Vec<ClassicEntity> {
    let mut out = Vec::new();
    let tags_of = |m: &Map<String, Value>| -> Vec<String> {
        m.get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    for (len, make, kind, field) in [
        (HOSTS.len(), host as Maker, "HOST", "dt.entity.host"),
        (SERVICES.len(), service, "SERVICE", "dt.entity.service"),
        (
            SERVICES.len(),
            process_group,
            "PROCESS_GROUP",
            "dt.entity.process_group",
        ),
        (
            CLUSTERS.len(),
            cluster,
            "KUBERNETES_CLUSTER",
            "dt.entity.kubernetes_cluster",
        ),
    ] {
        for i in 0..len {
            let m = make(i, 0);
            out.push(ClassicEntity {
                kind,
                id: m["id"].as_str().unwrap_or_default().to_string(),
                name: m["entity.name"].as_str().unwrap_or_default().to_string(),
                tags: tags_of(&m),
                field,
            });
        }
    }
    out
}

/// The team owning a namespace (for tags).
fn team(namespace: &str) -> &'static str {
    match namespace {
        "payments" => "payments",
        "identity" => "identity",
        _ => "shop",
    }
}

fn env_of(cluster: usize) -> &'static str {
    if cluster == 0 { "prod" } else { "staging" }
}

/// Tags of service `index`, as `key:value` strings.
fn service_tags(index: usize) -> Vec<String> {
    let s = &SERVICES[index];
    let mut tags = vec![
        format!("env:{}", env_of(HOSTS[s.host].cluster)),
        format!("app:{}", s.name),
        format!("team:{}", team(s.namespace)),
    ];
    if matches!(s.name, "payment-service" | "checkout-service") {
        tags.push("tier:critical".to_string());
    }
    tags
}

// ---------------------------------------------------------------------------------------------
// Smartscape

/// Smartscape nodes of the given types (`*` = all; upper-case type names).
pub fn smartscape_nodes(types: &[String]) -> Vec<Map<String, Value>> {
    let wanted = |t: &str| types.iter().any(|w| w == "*" || w.eq_ignore_ascii_case(t));
    let mut nodes = Vec::new();
    if wanted("K8S_CLUSTER") {
        for (i, c) in CLUSTERS.iter().enumerate() {
            nodes.push(object(json!({
                "id": c.id,
                "type": "K8S_CLUSTER",
                "name": c.name,
                "tags": [format!("env:{}", env_of(i)), "team:platform"],
                "k8s.cluster.name": c.name,
                "k8s.cluster.uid": c.uid,
                "k8s.cluster.distribution": "EKS",
            })));
        }
    }
    if wanted("K8S_NAMESPACE") {
        let mut seen = Vec::new();
        for s in SERVICES {
            let cluster = HOSTS[s.host].cluster;
            if seen.contains(&(cluster, s.namespace)) {
                continue;
            }
            seen.push((cluster, s.namespace));
            let n = seen.len();
            nodes.push(object(json!({
                "id": format!("K8S_NAMESPACE-{}", hex(n, 50, 16).to_uppercase()),
                "type": "K8S_NAMESPACE",
                "name": s.namespace,
                "tags": [format!("env:{}", env_of(cluster)), format!("team:{}", team(s.namespace))],
                "k8s.cluster.name": CLUSTERS[cluster].name,
                "k8s.namespace.name": s.namespace,
            })));
        }
    }
    if wanted("HOST") {
        for h in HOSTS {
            nodes.push(object(json!({
                "id": h.id,
                "type": "HOST",
                "name": h.name,
                "tags": [format!("env:{}", env_of(h.cluster)), "team:platform"],
                "host.name": h.name,
                "os.type": "LINUX",
                "cloud.provider": "aws",
                "k8s.cluster.name": CLUSTERS[h.cluster].name,
            })));
        }
    }
    if wanted("SERVICE") {
        for (i, s) in SERVICES.iter().enumerate() {
            let host = &HOSTS[s.host];
            nodes.push(object(json!({
                "id": s.id,
                "type": "SERVICE",
                "name": s.name,
                "tags": service_tags(i),
                "service.type": "WEB_REQUEST_SERVICE",
                "k8s.cluster.name": CLUSTERS[host.cluster].name,
                "k8s.namespace.name": s.namespace,
                "runs_on.host": host.id,
            })));
        }
    }
    if wanted("PROCESS") {
        for (i, s) in SERVICES.iter().enumerate() {
            let host = &HOSTS[s.host];
            nodes.push(object(json!({
                "id": format!("PROCESS-{}", hex(i, 51, 16).to_uppercase()),
                "type": "PROCESS",
                "name": format!("{} (java)", s.name),
                "tags": service_tags(i),
                "process.executable.name": "java",
                "host.name": host.name,
                "k8s.namespace.name": s.namespace,
                "runs.service": s.id,
            })));
        }
    }
    nodes
}

// ---------------------------------------------------------------------------------------------
// Metrics (`timeseries`)

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The dimension values `timeseries … by:{…}` groups into: one map per series.
fn metric_groups(by: &[String]) -> Vec<Map<String, Value>> {
    let wants = |names: &[&str]| by.iter().any(|b| names.contains(&b.as_str()));
    let fill = |values: &[(&str, Value)]| {
        let mut m = Map::new();
        for field in by {
            let v = values
                .iter()
                .find(|(k, _)| k == field)
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null);
            m.insert(field.clone(), v);
        }
        m
    };
    if by.is_empty() {
        return vec![Map::new()];
    }
    if wants(&[
        "dt.entity.service",
        "service.name",
        "dt.entity.process_group",
    ]) {
        return SERVICES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let h = &HOSTS[s.host];
                fill(&[
                    ("dt.entity.service", json!(s.id)),
                    ("service.name", json!(s.name)),
                    ("dt.entity.process_group", json!(process_group_id(i))),
                    ("dt.entity.host", json!(h.id)),
                    ("host.name", json!(h.name)),
                    ("k8s.namespace.name", json!(s.namespace)),
                    ("k8s.cluster.name", json!(CLUSTERS[h.cluster].name)),
                ])
            })
            .collect();
    }
    if wants(&["dt.entity.host", "host.name"]) {
        return HOSTS
            .iter()
            .map(|h| {
                fill(&[
                    ("dt.entity.host", json!(h.id)),
                    ("host.name", json!(h.name)),
                    ("k8s.cluster.name", json!(CLUSTERS[h.cluster].name)),
                    (
                        "dt.entity.kubernetes_cluster",
                        json!(CLUSTERS[h.cluster].id),
                    ),
                ])
            })
            .collect();
    }
    if wants(&["k8s.namespace.name"]) {
        let mut seen: Vec<(usize, &str)> = Vec::new();
        for s in SERVICES {
            let c = HOSTS[s.host].cluster;
            if !seen.contains(&(c, s.namespace)) {
                seen.push((c, s.namespace));
            }
        }
        return seen
            .into_iter()
            .map(|(c, ns)| {
                fill(&[
                    ("k8s.namespace.name", json!(ns)),
                    ("k8s.cluster.name", json!(CLUSTERS[c].name)),
                ])
            })
            .collect();
    }
    if wants(&["k8s.cluster.name", "dt.entity.kubernetes_cluster"]) {
        return CLUSTERS
            .iter()
            .map(|c| {
                fill(&[
                    ("k8s.cluster.name", json!(c.name)),
                    ("dt.entity.kubernetes_cluster", json!(c.id)),
                ])
            })
            .collect();
    }
    vec![fill(&[])]
}

/// One series of a metric: its dimensions and a value (or null) per bucket.
pub type MetricSeries = (Map<String, Value>, Vec<Option<f64>>);

/// Synthetic values of `metric` for each group of `by`, `points` buckets of `interval`
/// nanoseconds from `start`. Deterministic: the same arguments give the same series.
pub fn metric_series(
    metric: &str,
    function: &str,
    by: &[String],
    start: i128,
    interval: i128,
    points: usize,
) -> Vec<MetricSeries> {
    let m = metric.to_lowercase();
    let (base, spread) = if m.contains("cpu") {
        (35.0, 12.0)
    } else if m.contains("memory") {
        (68.0, 6.0)
    } else if m.contains("response_time") || m.contains("duration") {
        (180_000.0, 40_000.0)
    } else if m.contains("failure") || m.contains("error") {
        (4.0, 3.0)
    } else if m.contains("count") {
        (1_200.0 * (interval as f64 / 60e9).max(0.1), 300.0)
    } else {
        (100.0, 30.0)
    };
    let factor = match function {
        "max" => 1.3,
        "min" => 0.7,
        _ => 1.0,
    };
    metric_groups(by)
        .into_iter()
        .map(|dims| {
            let seed = fnv(&format!("{metric}{}", Value::Object(dims.clone())));
            let level = base * (0.7 + (seed % 60) as f64 / 100.0) * factor;
            let values = (0..points)
                .map(|i| {
                    let at = start + interval * i as i128;
                    // A daily cycle, plus noise fixed by the bucket's time.
                    let day = (at.rem_euclid(86_400 * SECOND)) as f64 / (86_400.0 * 1e9);
                    let noise =
                        (mix((at / interval) as usize, seed % 1000) % 1000) as f64 / 1000.0 - 0.5;
                    let v = level
                        + spread * 0.5 * (day * std::f64::consts::TAU).sin()
                        + spread * 0.3 * noise;
                    Some((v.max(0.0) * 1000.0).round() / 1000.0)
                })
                .collect();
            (dims, values)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Grail buckets (`fetch dt.system.buckets`)

/// (name, display name, table, retention days, records, uncompressed bytes, updatable)
const BUCKETS: &[(&str, &str, &str, u32, u64, u64, bool)] = &[
    (
        "default_logs",
        "Default logs (35 days)",
        "logs",
        35,
        18_214_550,
        41_977_312_560,
        false,
    ),
    (
        "default_events",
        "Default events (35 days)",
        "events",
        35,
        412_880,
        903_412_112,
        false,
    ),
    (
        "default_spans",
        "Default spans (10 days)",
        "spans",
        10,
        52_118_004,
        77_020_914_880,
        false,
    ),
    (
        "default_bizevents",
        "Default business events (35 days)",
        "bizevents",
        35,
        1_280_455,
        2_118_200_431,
        false,
    ),
    (
        "default_securityevents",
        "Default security events (1 year)",
        "security.events",
        365,
        96_112,
        210_441_920,
        false,
    ),
    (
        "default_securityevents_builtin",
        "Built-in security events (3 years)",
        "security.events",
        1095,
        31_877,
        88_300_115,
        false,
    ),
    (
        "default_user_events",
        "Default user events (35 days)",
        "user.events",
        35,
        3_310_876,
        6_904_118_212,
        false,
    ),
    (
        "dt_system_events",
        "System events (1 year)",
        "dt.system.events",
        365,
        75_003,
        120_554_661,
        false,
    ),
    (
        "default_metrics",
        "Default metrics (15 months)",
        "metrics",
        462,
        980_011_457,
        311_004_551_096,
        false,
    ),
    (
        "team_payments_logs",
        "Payments team logs (90 days)",
        "logs",
        90,
        2_441_908,
        5_870_512_334,
        true,
    ),
];

fn bucket(index: usize, _now: i128) -> Map<String, Value> {
    let (name, display, table, retention, records, bytes, updatable) = BUCKETS[index];
    object(json!({
        "name": name,
        "display_name": display,
        "table": table,
        "retention_days": retention.to_string(),
        "estimated_uncompressed_bytes": bytes.to_string(),
        "records": records.to_string(),
        "status": "active",
        "updatable": updatable,
        "version": if updatable { "3" } else { "1" },
    }))
}

// ---------------------------------------------------------------------------------------------
// Vulnerabilities (`fetch security.events`)

struct Vulnerability {
    display: u32,
    title: &'static str,
    score: f64,
    cves: &'static [&'static str],
    component: &'static str,
    technology: &'static str,
    parent_muted: bool,
}

const VULNERABILITIES: &[Vulnerability] = &[
    Vulnerability {
        display: 101,
        title: "Remote code execution in org.apache.logging.log4j:log4j-core (Log4Shell)",
        score: 9.8,
        cves: &["CVE-2021-44228", "CVE-2021-45046"],
        component: "log4j-core",
        technology: "JAVA",
        parent_muted: false,
    },
    Vulnerability {
        display: 102,
        title: "Remote code execution in org.springframework:spring-beans (Spring4Shell)",
        score: 9.3,
        cves: &["CVE-2022-22965"],
        component: "spring-beans",
        technology: "JAVA",
        parent_muted: false,
    },
    Vulnerability {
        display: 103,
        title: "Deserialization of untrusted data in com.fasterxml.jackson.core:jackson-databind",
        score: 8.1,
        cves: &["CVE-2020-36518"],
        component: "jackson-databind",
        technology: "JAVA",
        parent_muted: false,
    },
    Vulnerability {
        display: 104,
        title: "Denial of service in org.yaml:snakeyaml",
        score: 7.5,
        cves: &["CVE-2022-25857"],
        component: "snakeyaml",
        technology: "JAVA",
        parent_muted: false,
    },
    Vulnerability {
        display: 105,
        title: "Prototype pollution in lodash",
        score: 7.4,
        cves: &["CVE-2020-8203"],
        component: "lodash",
        technology: "NODE_JS",
        parent_muted: false,
    },
    Vulnerability {
        display: 106,
        title: "Improper input validation in io.netty:netty-codec-http",
        score: 6.5,
        cves: &["CVE-2022-24823"],
        component: "netty-codec-http",
        technology: "JAVA",
        parent_muted: false,
    },
    Vulnerability {
        display: 107,
        title: "Regular expression denial of service in semver",
        score: 5.3,
        cves: &["CVE-2022-25883"],
        component: "semver",
        technology: "NODE_JS",
        parent_muted: false,
    },
    Vulnerability {
        display: 108,
        title: "Information exposure in commons-io:commons-io",
        score: 3.7,
        cves: &["CVE-2021-29425"],
        component: "commons-io",
        technology: "JAVA",
        parent_muted: true,
    },
];

/// Vulnerability state snapshots: (vulnerability, affected service, age in hours, resolved, muted).
const VULNERABILITY_REPORTS: &[(usize, usize, i128, bool, bool)] = &[
    (0, 3, 240, false, false),
    (0, 3, 48, false, false),
    (0, 3, 2, false, false),
    (0, 2, 240, false, false),
    (0, 2, 30, true, false),
    (0, 5, 20, false, false),
    (1, 1, 200, false, false),
    (1, 1, 20, false, false),
    (1, 1, 1, false, false),
    (1, 4, 100, false, false),
    (1, 4, 5, false, true),
    (2, 3, 300, false, false),
    (2, 3, 26, false, false),
    (2, 5, 120, false, false),
    (2, 5, 12, false, false),
    (2, 5, 3, false, false),
    (3, 4, 90, false, false),
    (3, 4, 4, false, false),
    (3, 2, 400, false, false),
    (3, 2, 60, true, false),
    (4, 0, 150, false, false),
    (4, 0, 6, false, false),
    (4, 6, 80, false, false),
    (4, 6, 8, false, false),
    (5, 1, 70, false, false),
    (5, 1, 7, false, false),
    (6, 0, 50, false, false),
    (6, 0, 9, false, true),
    (7, 5, 500, false, false),
    (7, 5, 10, false, false),
];

fn risk_level(score: f64) -> &'static str {
    match score {
        s if s >= 9.0 => "CRITICAL",
        s if s >= 7.0 => "HIGH",
        s if s >= 4.0 => "MEDIUM",
        _ => "LOW",
    }
}

/// Vulnerability state report events, newest first.
pub fn security_events(now: i128) -> Vec<Map<String, Value>> {
    let mut order: Vec<usize> = (0..VULNERABILITY_REPORTS.len()).collect();
    order.sort_by_key(|&i| VULNERABILITY_REPORTS[i].2);
    order
        .into_iter()
        .map(|i| {
            let (v, service, age_hours, resolved, muted) = VULNERABILITY_REPORTS[i];
            let vuln = &VULNERABILITIES[v];
            let s = &SERVICES[service];
            object(json!({
                "timestamp": format_time(now - age_hours * 3600 * SECOND - (mix(i, 60) % 60_000) as i128 * 1_000_000),
                "event.id": hex(i, 61, 32),
                "event.kind": "SECURITY_EVENT",
                "event.category": "VULNERABILITY_MANAGEMENT",
                "event.provider": "Dynatrace",
                "event.type": "VULNERABILITY_STATE_REPORT_EVENT",
                "event.level": "ENTITY",
                "dt.system.bucket": "default_securityevents_builtin",
                "vulnerability.id": (mix(v, 62) % 9_000_000_000_000_000_000 + 1_000_000_000_000_000_000).to_string(),
                "vulnerability.display_id": format!("S-{}", vuln.display),
                "vulnerability.external_id": vuln.cves[0],
                "vulnerability.title": vuln.title,
                "vulnerability.type": "THIRD_PARTY",
                "vulnerability.technology": vuln.technology,
                "vulnerability.risk.score": vuln.score,
                "vulnerability.risk.level": risk_level(vuln.score),
                "vulnerability.mute.status": if muted { "MUTED" } else { "NOT_MUTED" },
                "vulnerability.parent.mute.status": if vuln.parent_muted { "MUTED" } else { "NOT_MUTED" },
                "vulnerability.resolution.status": if resolved { "RESOLVED" } else { "OPEN" },
                "vulnerability.references.cve": vuln.cves,
                "software_component.name": vuln.component,
                "affected_entity.id": process_group_id(service),
                "affected_entity.name": format!("{} (java)", s.name),
                "affected_entity.type": "PROCESS_GROUP",
                "related_entities.services.ids": [s.id],
                "related_entities.services.names": [s.name],
                "k8s.namespace.name": s.namespace,
            }))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Real-user monitoring (`fetch user.events`)

const USER_EVENT_COUNT: usize = 60;

/// (error.type, exception.message, top stack frame)
const JS_ERRORS: &[(&str, &str, &str)] = &[
    (
        "TypeError",
        "Cannot read properties of undefined (reading 'price')",
        "at CartSummary.render (https://shop.example.com/static/js/cart.4f2a1c.js:1:20431)",
    ),
    (
        "ReferenceError",
        "checkoutConfig is not defined",
        "at initCheckout (https://shop.example.com/static/js/checkout.9b7e02.js:1:5120)",
    ),
    (
        "TypeError",
        "Failed to fetch",
        "at submitPayment (https://shop.example.com/static/js/checkout.9b7e02.js:1:8877)",
    ),
    (
        "SyntaxError",
        "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON",
        "at JSON.parse (<anonymous>)",
    ),
    (
        "RangeError",
        "Maximum call stack size exceeded",
        "at flattenCategories (https://shop.example.com/static/js/catalog.1d33aa.js:1:3310)",
    ),
];

const RUM_APPS: &[(&str, &str, &str)] = &[
    (
        "7f3d2c1b-5a4e-4f6d-9c8b-1a2b3c4d5e6f",
        "APPLICATION-EA7C4B59F27D43EB",
        "shop-web",
    ),
    (
        "0c9e8d7f-6b5a-4c3d-8e2f-9a8b7c6d5e4f",
        "APPLICATION-3B8F1E2D9C4A7B60",
        "shop-android",
    ),
];

fn user_event(index: usize, now: i128) -> Map<String, Value> {
    let at =
        now - (index as i128) * 6 * 60 * SECOND - (mix(index, 70) % 50_000) as i128 * 1_000_000;
    let app = if index % 4 == 3 {
        &RUM_APPS[1]
    } else {
        &RUM_APPS[0]
    };
    let os = if app.2 == "shop-android" {
        "Android"
    } else {
        *pick(&["Windows", "macOS", "iOS", "Linux", "Windows"], index, 71)
    };
    let pages = ["/", "/products", "/cart", "/checkout", "/checkout/payment"];
    let page = pick(&pages, index, 72);
    let mut record = object(json!({
        "timestamp": format_time(at),
        "start_time": format_time(at - 1_200_000_000),
        "dt.system.bucket": "default_user_events",
        "dt.rum.application.id": app.0,
        "dt.rum.application.entity": app.1,
        "dt.rum.application.name": app.2,
        "dt.rum.session.id": hex(index / 3, 73, 24),
        "dt.rum.user_type": "REAL_USER",
        "os.name": os,
        "browser.name": if os == "Android" { "Chrome Mobile" } else { *pick(&["Chrome", "Firefox", "Safari", "Edge"], index, 74) },
        "page.url.path": page,
        "characteristics.has_error": index % 3 == 0,
    }));
    if index % 3 == 0 {
        let which = (mix(index, 75) % JS_ERRORS.len() as u64) as usize;
        let (error_type, message, frame) = JS_ERRORS[which];
        record.insert("characteristics.has_exception".into(), json!(true));
        record.insert("error.id".into(), json!(hex(which, 76, 32)));
        record.insert("error.type".into(), json!(error_type));
        record.insert("exception.type".into(), json!(error_type));
        record.insert("exception.message".into(), json!(message));
        record.insert(
            "exception.stack_trace".into(),
            json!(format!(
                "{error_type}: {message}\n    {frame}\n    at HTMLButtonElement.onClick (https://shop.example.com/static/js/main.77c1f0.js:2:1184)\n    at invokeGuardedCallback (https://shop.example.com/static/js/vendor.e1a2b3.js:1:40211)"
            )),
        );
    } else {
        record.insert("characteristics.has_exception".into(), json!(false));
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_deterministic_and_grail_encoded() {
        let now = 1_764_000_000 * SECOND;
        let a = source("logs", now, 100).unwrap().record(7);
        let b = source("logs", now, 100).unwrap().record(7);
        assert_eq!(a, b);
        assert!(a["timestamp"].as_str().unwrap().ends_with('Z'));
        let p = source("dt.davis.problems", now, 0).unwrap().record(0);
        assert!(p["affected_users_count"].is_string());
        assert_eq!(p["event.status"], "ACTIVE");
        assert!(source("nope", now, 0).is_none());
    }
}

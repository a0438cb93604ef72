//! Sample data for the simulated tenant: a small shop (frontend, cart, checkout, payment,
//! inventory…) on two Kubernetes clusters, with logs, spans, Davis problems, events and entities.
//!
//! Records are generated on demand from their index with a fixed seed, so the data is the same
//! in every run (relative to the tenant's start time) and 10,000-record queries cost no storage.
//! Values follow Grail's JSON encoding: longs and durations are strings, timestamps are RFC 3339
//! with nanoseconds.

use serde_json::{Map, Value, json};

use super::dql::{Source, format_time};

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
fn mix(index: usize, salt: u64) -> u64 {
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
pub fn source(name: &str, now: i128, log_records: usize) -> Option<Generated> {
    let (len, make): (usize, Maker) = match name {
        "logs" => (log_records, log),
        "spans" => (5_000, span),
        "dt.davis.problems" => (PROBLEMS.len(), problem),
        "events" => (400, event),
        "dt.entity.host" => (HOSTS.len(), host),
        "dt.entity.service" => (SERVICES.len(), service),
        "dt.entity.kubernetes_cluster" => (CLUSTERS.len(), cluster),
        "dt.entity.process_group" => (SERVICES.len(), process_group),
        _ => return None,
    };
    Some(Generated { len, now, make })
}

/// Names of the data objects, for error messages.
pub const SOURCES: &[&str] = &[
    "logs",
    "spans",
    "events",
    "dt.davis.problems",
    "dt.entity.host",
    "dt.entity.service",
    "dt.entity.process_group",
    "dt.entity.kubernetes_cluster",
];

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
        "affected_users_count": p.users.to_string(),
        "dt.davis.is_duplicate": false,
        "maintenance.is_under_maintenance": false,
        "k8s.cluster.name": CLUSTERS[HOSTS[root.host].cluster].name,
    }))
}

fn event(index: usize, now: i128) -> Map<String, Value> {
    let kinds = [
        ("K8S_EVENT", "Pod started", "Normal"),
        (
            "K8S_EVENT",
            "Back-off restarting failed container",
            "Warning",
        ),
        ("K8S_EVENT", "Scaled up replica set", "Normal"),
        ("K8S_EVENT", "Liveness probe failed", "Warning"),
        (
            "CUSTOM_DEPLOYMENT",
            "Deployment of release 2026.11.3",
            "Normal",
        ),
        ("CUSTOM_INFO", "Feature flag checkout-v2 enabled", "Normal"),
    ];
    let (kind, name, severity) = pick(&kinds, index, 30);
    let service = pick(SERVICES, index, 31);
    let host = &HOSTS[service.host];
    let cluster = &CLUSTERS[host.cluster];
    let at = now - (index as i128) * 18 * SECOND * 10;
    object(json!({
        "timestamp": format_time(at),
        "event.id": hex(index, 32, 20),
        "event.kind": if kind.starts_with("K8S") { "K8S_EVENT" } else { "INFO_EVENT" },
        "event.type": kind,
        "event.name": name,
        "event.provider": if kind.starts_with("K8S") { "KUBERNETES" } else { "API" },
        "k8s.event.severity": severity,
        "k8s.cluster.name": cluster.name,
        "k8s.cluster.uid": cluster.uid,
        "dt.entity.kubernetes_cluster": cluster.id,
        "k8s.namespace.name": service.namespace,
        "k8s.pod.name": format!("{}-{}", service.name, hex(index % 5, 33, 10)),
        "dt.entity.service": service.id,
    }))
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
    let env = if HOSTS[s.host].cluster == 0 {
        "prod"
    } else {
        "staging"
    };
    object(json!({
        "id": s.id,
        "entity.name": s.name,
        "entity.type": "SERVICE",
        "serviceType": "WEB_REQUEST_SERVICE",
        "k8s.namespace.name": s.namespace,
        "runs_on.host": HOSTS[s.host].id,
        "tags": [format!("env:{env}"), format!("app:{}", s.name), "owner:team-shop".to_string()],
    }))
}

fn process_group(index: usize, _now: i128) -> Map<String, Value> {
    let s = &SERVICES[index];
    object(json!({
        "id": format!("PROCESS_GROUP-{}", hex(index, 40, 16).to_uppercase()),
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

//! OAuth scopes each call needs.
//!
//! OAuth tokens are requested per scope set (and cached per set), so an OAuth client that lacks
//! the scope of one tool only breaks that tool, and Dynatrace's 403 names what is missing. For DQL
//! the set is derived from the data sources a query reads.

/// `GET /platform/management/v1/environment` (a real tenant names this scope when it is missing).
pub const ENVIRONMENT: &str = "platform-management:environments:read";
/// `query:verify` reads no data.
pub const QUERY_VERIFY: &str = "storage:buckets:read";

/// Every storage read scope: used when a query's sources cannot be told from its text.
pub const ALL_STORAGE_READ: &[&str] = &[
    "storage:buckets:read",
    "storage:logs:read",
    "storage:events:read",
    "storage:metrics:read",
    "storage:spans:read",
    "storage:bizevents:read",
    "storage:entities:read",
    "storage:smartscape:read",
    "storage:system:read",
    "storage:security.events:read",
    "storage:user.events:read",
    "storage:user.sessions:read",
];

/// The scopes a DQL query needs, from the sources it names (`fetch logs` → `storage:logs:read`…),
/// always with `storage:buckets:read`. Falls back to every storage read scope when a source is
/// unknown, so a query is never sent with too few.
pub fn for_dql(query: &str) -> String {
    let mut scopes: Vec<&str> = vec!["storage:buckets:read"];
    let mut unknown = false;
    let lowered = query.to_ascii_lowercase();
    let words: Vec<&str> = lowered
        .split(|c: char| c.is_whitespace() || c == '|' || c == '(' || c == '[' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    for (i, word) in words.iter().enumerate() {
        let source = match *word {
            "fetch" => words.get(i + 1).copied(),
            "timeseries" | "makeTimeseries" => {
                scopes.push("storage:metrics:read");
                None
            }
            "smartscapenodes" | "smartscapeedges" => {
                scopes.push("storage:smartscape:read");
                None
            }
            _ => None,
        };
        let Some(source) = source else { continue };
        let scope = match source {
            "logs" => "storage:logs:read",
            "spans" => "storage:spans:read",
            "bizevents" => "storage:bizevents:read",
            "events" => "storage:events:read",
            "security.events" => "storage:security.events:read",
            "user.events" => "storage:user.events:read",
            "user.sessions" | "user.replays" => "storage:user.sessions:read",
            "metrics" | "metric.series" => "storage:metrics:read",
            s if s.starts_with("dt.davis.") => "storage:events:read",
            s if s.starts_with("dt.entity.") => "storage:entities:read",
            s if s.starts_with("dt.system.") => "storage:system:read",
            s if s.starts_with("dt.smartscape") => "storage:smartscape:read",
            _ => {
                unknown = true;
                continue;
            }
        };
        scopes.push(scope);
    }
    if unknown || scopes.len() == 1 {
        return ALL_STORAGE_READ.join(" ");
    }
    scopes.sort_unstable();
    scopes.dedup();
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dql_scopes_follow_the_sources() {
        assert_eq!(
            for_dql("fetch logs | limit 10"),
            "storage:buckets:read storage:logs:read"
        );
        assert_eq!(
            for_dql("fetch dt.davis.problems\n| join [fetch dt.entity.service], on:{id}"),
            "storage:buckets:read storage:entities:read storage:events:read"
        );
        assert_eq!(
            for_dql("timeseries avg(dt.host.cpu.usage)"),
            "storage:buckets:read storage:metrics:read"
        );
        assert_eq!(for_dql("fetch something.new"), ALL_STORAGE_READ.join(" "));
        assert_eq!(for_dql("data record(a=1)"), ALL_STORAGE_READ.join(" "));
    }
}

//! Just enough `multipart/form-data` (RFC 7578) to read what the document API receives, and to
//! write the multipart answer of `GET /documents/{id}`.

/// One part of a form.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

impl Part {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut pieces = content_type.split(';');
    let kind = pieces.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    pieces.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| &haystack[i..i + needle.len()] == needle)
}

/// The parts of `body`, or what is malformed.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut at = find(body, &delimiter, 0).ok_or("the body does not contain the boundary")?;
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        // Skip the CRLF after the delimiter.
        if body[at..].starts_with(b"\r\n") {
            at += 2;
        } else if body[at..].starts_with(b"\n") {
            at += 1;
        }
        let (header_end, separator) = match find(body, b"\r\n\r\n", at) {
            Some(i) => (i, 4),
            None => (
                find(body, b"\n\n", at).ok_or("a part has no header/body separator")?,
                2,
            ),
        };
        let headers = String::from_utf8_lossy(&body[at..header_end]).into_owned();
        let data_start = header_end + separator;
        let mut next_delimiter = b"\r\n".to_vec();
        next_delimiter.extend_from_slice(&delimiter);
        let (data_end, next) = match find(body, &next_delimiter, data_start) {
            Some(i) => (i, i + 2),
            None => {
                let mut lf = b"\n".to_vec();
                lf.extend_from_slice(&delimiter);
                let i = find(body, &lf, data_start).ok_or("the last part is not terminated")?;
                (i, i + 1)
            }
        };
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body[data_start..data_end].to_vec(),
        };
        for line in headers.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            if key == "content-disposition" {
                for piece in value.split(';').skip(1) {
                    if let Some((k, v)) = piece.trim().split_once('=') {
                        let v = v.trim().trim_matches('"').to_string();
                        match k.trim() {
                            "name" => part.name = v,
                            "filename" => part.filename = Some(v),
                            _ => {}
                        }
                    }
                }
            } else if key == "content-type" {
                part.content_type = Some(value.to_string());
            }
        }
        if part.name.is_empty() {
            return Err("a part has no name in its Content-Disposition".into());
        }
        parts.push(part);
        at = next;
    }
}

/// A multipart body of `(name, content type, data)` parts, with its content type.
pub fn write(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "sandbox-boundary-7d1f0c2e9b";
    let mut body = Vec::new();
    for (name, content_type, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_reqwest_style_bodies() {
        let (ct, body) = write(&[
            ("name", "text/plain", b"My notebook"),
            ("content", "application/json", b"{\"version\":\"7\"}"),
        ]);
        let b = boundary(&ct).unwrap();
        let parts = parse(&body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "name");
        assert_eq!(parts[0].text(), "My notebook");
        assert_eq!(parts[1].content_type.as_deref(), Some("application/json"));
        assert_eq!(parts[1].text(), "{\"version\":\"7\"}");
        assert!(boundary("application/json").is_none());
        let odd = b"--x\r\nContent-Disposition: form-data; name=\"content\"; filename=\"binary\"\r\n\r\nline1\r\nline2\r\n--x--\r\n";
        let parts = parse(odd, "x").unwrap();
        assert_eq!(parts[0].filename.as_deref(), Some("binary"));
        assert_eq!(parts[0].text(), "line1\r\nline2");
        assert!(parse(b"nothing here", "x").is_err());
    }
}

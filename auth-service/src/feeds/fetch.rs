//! Getting a feed's bytes: an HTTP download (reqwest, rustls) under the feed's deadline and size
//! cap, or a local file (`ipcheck-auth feed <name> --file <path>`).

use std::path::Path;
use std::time::Duration;

/// Downloads `url`: the body as text, or why not (status, deadline, size, encoding). Messages
/// name the URL without its credentials and query ([`shown`]), where a feed's key would be.
pub async fn download(url: &str, timeout: Duration, max_bytes: u64) -> Result<String, String> {
    let shown = shown(url);
    let url_text = url;
    let url = shown.as_str();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!(
            "ipcheck-auth/",
            env!("CARGO_PKG_VERSION"),
            " (feed)"
        ))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut response = client
        .get(url_text)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(e, timeout)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large(url, max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(e, timeout)))?
    {
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(too_large(url, max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|e| format!("GET {url}: the body is not UTF-8 text: {e}"))
}

/// Reads a local file, under the same size cap.
pub fn read_file(path: &Path, max_bytes: u64) -> Result<String, String> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if len > max_bytes {
        return Err(format!(
            "{shown} holds {len} bytes, more than max_bytes = {max_bytes}"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    String::from_utf8(bytes).map_err(|e| format!("{shown} is not UTF-8 text: {e}"))
}

fn too_large(url: &str, max_bytes: u64) -> String {
    format!("GET {url}: the body is larger than max_bytes = {max_bytes}")
}

/// `url` as logs show it: no user, password or query (`?...` marks one was there).
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let had_query = u.query().is_some();
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            let mut text = u.to_string();
            if had_query {
                text.push_str("?...");
            }
            text
        }
        Err(_) => "(invalid URL)".to_owned(),
    }
}

/// The error without its URL (which [`shown`] prints instead).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        format!(
            "no complete answer within timeout = {}",
            crate::duration::display(timeout)
        )
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_keep_no_secret() {
        assert_eq!(
            shown("https://user:pw@feeds.example/drop.txt?key=SECRET#x"),
            "https://feeds.example/drop.txt?..."
        );
        assert_eq!(shown("http://127.0.0.1:8/a"), "http://127.0.0.1:8/a");
    }
}

//! The one HTTP client of xtask's checks (`bench`, `rootfs-smoke`): reqwest's blocking client,
//! talking plain HTTP to servers xtask started on 127.0.0.1.

use std::{io::Read, time::Duration};

use anyhow::Context;

/// A status and the whole body (de-chunked by reqwest), as text.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

#[derive(Debug, Clone)]
pub(crate) struct HttpClient(reqwest::blocking::Client);

impl HttpClient {
    /// `timeout` bounds each whole exchange (`None`: no bound, for long streams); connecting is
    /// bounded by 2 s, since a local server either listens or does not. Proxies from the
    /// environment are ignored: every server is on this machine.
    pub(crate) fn new(timeout: Option<Duration>) -> anyhow::Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .no_proxy()
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self(client))
    }

    /// `method url`, with `body` as JSON if there is one.
    pub(crate) fn send(&self, method: &str, url: &str, body: Option<&str>) -> anyhow::Result<Answer> {
        self.send_with_token(method, url, body, None)
    }

    /// [`HttpClient::send`], with `Authorization: Bearer <token>` if there is a token.
    pub(crate) fn send_with_token(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).with_context(|| format!("method {method}"))?;
        let mut request = self.0.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json").body(body.to_owned());
        }
        answer(request.send()?)
    }

    /// `POST url` with a body of `len` bytes read from `body` as it is sent (never all in memory).
    pub(crate) fn post_stream(
        &self,
        url: &str,
        content_type: &str,
        body: impl Read + Send + 'static,
        len: u64,
    ) -> anyhow::Result<Answer> {
        let body = reqwest::blocking::Body::sized(body, len);
        answer(self.0.post(url).header("Content-Type", content_type).body(body).send()?)
    }
}

fn answer(response: reqwest::blocking::Response) -> anyhow::Result<Answer> {
    let status = response.status().as_u16();
    let body = response.text().context("reading the answer")?;
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader, Write},
        net::TcpListener,
    };

    use super::*;

    /// A real server on 127.0.0.1 that reads one request and answers, chunked, how many body
    /// bytes it received: the client sends a streamed body whole and de-chunks the answer.
    #[test]
    fn streams_a_body_and_reads_a_chunked_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(socket.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer = format!("{}", body.len());
            write!(
                &socket,
                "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nlen\r\n{:x}\r\n{answer}\r\n0\r\n\r\n",
                answer.len()
            )
            .unwrap();
        });
        let client = HttpClient::new(Some(Duration::from_secs(10))).unwrap();
        let body = std::io::repeat(7).take(1 << 20);
        let answer = client.post_stream(&format!("http://{addr}/upload"), "application/octet-stream", body, 1 << 20);
        server.join().unwrap();
        let answer = answer.unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (201, "len1048576"));
    }
}

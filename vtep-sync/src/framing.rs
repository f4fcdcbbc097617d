//! Splitting a byte stream into JSON texts.
//!
//! RFC 7047 §3.1 sends JSON-RPC messages back to back on the stream with no
//! length prefix or delimiter, so the only way to find where one message ends
//! is to follow the JSON grammar far enough to see the closing brace of the
//! top-level value. [`JsonSplitter`] does exactly that, incrementally: it keeps
//! its scanning state (depth, inside-a-string, after-a-backslash) between
//! reads, so every byte is looked at once, however the stream is chopped.
//! Full parsing is left to `serde_json` once a complete value has been found.

use thiserror::Error;

/// Default bound on one message: large enough for a 10,000-row monitor dump
/// of a switch, small enough that a broken peer cannot exhaust memory.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// Why the stream can no longer be split; after any of these the connection
/// must be dropped, because the position of the next message is unknown.
#[derive(Debug, Error)]
pub enum FrameError {
    /// The message being received grew past the configured bound.
    #[error("JSON message exceeds the maximum size of {max} bytes")]
    TooLarge {
        /// The configured bound in bytes.
        max: usize,
    },
    /// A byte that cannot start or continue a top-level JSON value.
    #[error("unexpected byte 0x{byte:02x} at top level of the JSON stream")]
    Garbage {
        /// The offending byte.
        byte: u8,
    },
    /// Brackets balanced but the text is not valid JSON.
    #[error("malformed JSON message: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Incremental splitter of a stream of concatenated JSON objects or arrays.
#[derive(Debug)]
pub struct JsonSplitter {
    buf: Vec<u8>,
    /// Where the current (incomplete) value starts in `buf`.
    start: usize,
    /// How far `buf` has been scanned.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    max: usize,
}

impl JsonSplitter {
    /// Makes a splitter that refuses any single message larger than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            max,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        // Drop what earlier messages used before growing, so the buffer stays
        // proportional to one message rather than to the whole session.
        if self.start > 0 && (self.start == self.buf.len() || self.start >= self.buf.len() / 2) {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a complete message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Returns the raw bytes of the next complete top-level value, if any.
    pub fn next_raw(&mut self) -> Result<Option<&[u8]>, FrameError> {
        while self.scanned < self.buf.len() {
            let b = self.buf[self.scanned];
            self.scanned += 1;
            if self.depth == 0 {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {
                        self.start = self.scanned;
                        continue;
                    }
                    b'{' | b'[' => {
                        self.start = self.scanned - 1;
                        self.depth = 1;
                        continue;
                    }
                    _ => return Err(FrameError::Garbage { byte: b }),
                }
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else {
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            let start = self.start;
                            self.start = self.scanned;
                            if self.scanned - start > self.max {
                                return Err(FrameError::TooLarge { max: self.max });
                            }
                            return Ok(Some(&self.buf[start..self.scanned]));
                        }
                    }
                    _ => {}
                }
            }
            if self.scanned - self.start > self.max {
                return Err(FrameError::TooLarge { max: self.max });
            }
        }
        Ok(None)
    }

    /// Returns the next complete message parsed as a JSON value, if any.
    pub fn next_value(&mut self) -> Result<Option<serde_json::Value>, FrameError> {
        match self.next_raw()? {
            Some(raw) => Ok(Some(serde_json::from_slice(raw)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split_all(
        input: &[u8],
        chunk: usize,
        max: usize,
    ) -> Result<Vec<serde_json::Value>, FrameError> {
        let mut s = JsonSplitter::new(max);
        let mut out = Vec::new();
        for part in input.chunks(chunk.max(1)) {
            s.push(part);
            while let Some(v) = s.next_value()? {
                out.push(v);
            }
        }
        Ok(out)
    }

    const STREAM: &str = concat!(
        r#"{"id":1,"result":{"a":"}{][","b":"\"}\\"},"error":null}"#,
        "\n  ",
        r#"{"id":null,"method":"update","params":["m",{"T":{"u":{"new":{"s":"x\\\"y{"}}}}]}"#,
        r#"[1,[2,[3]],{"k":"]"}]"#,
    );

    #[test]
    fn splits_at_every_byte_boundary() {
        let expected = vec![
            json!({"id":1,"result":{"a":"}{][","b":"\"}\\"},"error":null}),
            json!({"id":null,"method":"update","params":["m",{"T":{"u":{"new":{"s":"x\\\"y{"}}}}]}),
            json!([1, [2, [3]], {"k": "]"}]),
        ];
        for chunk in 1..=STREAM.len() {
            let got = split_all(STREAM.as_bytes(), chunk, 1 << 20).unwrap();
            assert_eq!(got, expected, "chunk size {chunk}");
        }
        // Every two-piece split, including inside escapes.
        for cut in 0..=STREAM.len() {
            let mut s = JsonSplitter::new(1 << 20);
            let mut got = Vec::new();
            for part in [&STREAM.as_bytes()[..cut], &STREAM.as_bytes()[cut..]] {
                s.push(part);
                while let Some(v) = s.next_value().unwrap() {
                    got.push(v);
                }
            }
            assert_eq!(got, expected, "cut at {cut}");
        }
    }

    #[test]
    fn incomplete_value_waits() {
        let mut s = JsonSplitter::new(100);
        s.push(br#"{"a":"#);
        assert!(s.next_value().unwrap().is_none());
        s.push(br#"1}"#);
        assert_eq!(s.next_value().unwrap(), Some(json!({"a":1})));
        assert!(s.next_value().unwrap().is_none());
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn oversize_is_refused_before_it_completes() {
        let mut s = JsonSplitter::new(16);
        s.push(br#"{"a":"0123456789abcdef"#);
        assert!(matches!(
            s.next_raw(),
            Err(FrameError::TooLarge { max: 16 })
        ));
        // A small message after many small messages is fine: the bound is per message.
        let mut s = JsonSplitter::new(16);
        for _ in 0..1000 {
            s.push(br#"{"a":1}"#);
            assert!(s.next_raw().unwrap().is_some());
        }
        assert!(s.buf.len() < 64, "buffer compacts: {}", s.buf.len());
    }

    #[test]
    fn exactly_max_is_accepted() {
        let msg = br#"{"a":"xxxxxxx"}"#;
        let mut s = JsonSplitter::new(msg.len());
        s.push(msg);
        assert!(s.next_raw().unwrap().is_some());
        let mut s = JsonSplitter::new(msg.len() - 1);
        s.push(msg);
        assert!(s.next_raw().is_err());
    }

    // A stand-in for a fuzz target: random bytes and randomly damaged valid
    // streams, cut at random points, must give values or errors, never a panic.
    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7047);
        let specials = b"{}[]\\\" x";
        for round in 0..2000 {
            let mut input: Vec<u8> = if round % 2 == 0 {
                (0..rng.random_range(0..200))
                    .map(|_| rng.random())
                    .collect()
            } else {
                STREAM.as_bytes().to_vec()
            };
            for _ in 0..rng.random_range(0..4) {
                if !input.is_empty() {
                    let i = rng.random_range(0..input.len());
                    input[i] = specials[rng.random_range(0..specials.len())];
                }
            }
            let mut s = JsonSplitter::new(rng.random_range(1..300));
            let mut rest = &input[..];
            'feed: while !rest.is_empty() {
                let n = rng.random_range(1..=rest.len());
                s.push(&rest[..n]);
                rest = &rest[n..];
                loop {
                    match s.next_value() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut s = JsonSplitter::new(100);
        s.push(b"hello");
        assert!(matches!(
            s.next_raw(),
            Err(FrameError::Garbage { byte: b'h' })
        ));
        let mut s = JsonSplitter::new(100);
        s.push(b"{}]");
        assert!(s.next_raw().unwrap().is_some());
        assert!(matches!(
            s.next_raw(),
            Err(FrameError::Garbage { byte: b']' })
        ));
        // Balanced but invalid JSON is caught by the parser.
        let mut s = JsonSplitter::new(100);
        s.push(b"{a:1,,}");
        assert!(matches!(s.next_value(), Err(FrameError::Malformed(_))));
        let mut s = JsonSplitter::new(100);
        s.push(&[b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}']);
        assert!(matches!(s.next_value(), Err(FrameError::Malformed(_))));
    }
}

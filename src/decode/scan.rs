//! A one-pass reader for the plain shape of a Cognito user-activity line, the hot case: the fields the
//! event needs, read and the whole line validated in a single scan, borrowed from the line.
//!
//! It only ever answers "this is a plain line, here are its fields" or "not sure": `None` sends the record
//! to serde (`envelope::Walk::json`), which then decodes or rejects it exactly as before. So it accepts a
//! strict subset of what serde accepts and never rejects anything itself. The subset: one JSON object whose
//! values are strings without escapes, objects and arrays of those, holding no key `Record` knows other than
//! the five a Cognito line has, and no known key twice (serde refuses a repeated known key, and takes a
//! repeated unknown one, as here). A backslash, a control character, a number, `true`, `false`, `null`, a
//! repeated known key, trailing text or broken JSON: `None`. Why not a JSON library: measured side by side
//! (`examples/decode_candidates.rs`, docs/performance.md), parsing was the cost, and the general parsers
//! spend it on building values and on a second pass over `message` that one scan of a known shape does not
//! need.

use std::borrow::Cow;

use super::challenges::{Challenges, Entry};
use super::cognito::Message;
use super::{LogSourceId, Record, Text};

/// How deep objects and arrays nest in an unknown field before the scanner hands the record to serde (whose
/// own limit is 128): real lines nest two deep, and the scan recurses once per level.
const MAX_DEPTH: u32 = 16;

/// Every key `Record` reads (its serde names). A line holding one the scanner does not read itself is some
/// other shape (a container, CloudTrail) and goes to serde. A test checks this against `Record`'s fields.
pub(super) const RECORD_KEYS: [&str; 27] = [
    "eventTimestamp",
    "logLevel",
    "logSourceId",
    "message",
    "eventSource",
    "eventVersion",
    "eventTime",
    "eventName",
    "eventType",
    "errorCode",
    "sourceIPAddress",
    "userAgent",
    "eventID",
    "awsRegion",
    "recipientAccountId",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "resources",
    "Records",
    "events",
    "logEvents",
    "messageType",
    "Events",
    "detail-type",
    "detail",
    "AuthEvents",
];

/// A record's text as the scanner takes it: no backslash and no control character, with its [`Quotes`].
/// The index lives in the caller's `Quotes` (made with `Quotes::default()`), filled in place: it is 272
/// bytes, and moving it from call to call showed in the profile.
pub(super) struct Plain<'a, 'q> {
    text: &'a str,
    quotes: &'q Quotes,
}

impl<'a, 'q> Plain<'a, 'q> {
    /// `text` (the record as the walk has it, trimmed), when it holds no backslash or control character
    /// and is at most [`MAX_SCANNED_BYTES`] long.
    pub(super) fn text(text: &'a str, quotes: &'q mut Quotes) -> Option<Plain<'a, 'q>> {
        (text.len() <= MAX_SCANNED_BYTES && quotes.index(text.as_bytes())).then_some(Plain { text, quotes })
    }

    /// The same from raw bytes trimmed of ASCII whitespace, when they are an object (start with `{`); their
    /// UTF-8 checked by the index's own pass when they are ASCII (the common case), else by
    /// `from_utf8`. So a plain line is read in one pass over its bytes before the scan, not two.
    pub(super) fn bytes(bytes: &'a [u8], quotes: &'q mut Quotes) -> Offer<'a, 'q> {
        let bytes = bytes.trim_ascii();
        if bytes.first() != Some(&b'{') {
            return Offer::Other;
        }
        if bytes.len() > MAX_SCANNED_BYTES || !quotes.index(bytes) {
            return Offer::Refused;
        }
        let text = if quotes.ascii {
            // SAFETY: every byte is below 0x80 (the index checked), and ASCII is valid UTF-8.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        } else {
            match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => return Offer::Other,
            }
        };
        Offer::Plain(Plain { text, quotes })
    }

    pub(super) fn as_str(&self) -> &'a str {
        self.text
    }
}

/// What [`Plain::bytes`] makes of a record's bytes.
pub(super) enum Offer<'a, 'q> {
    /// For the scanner.
    Plain(Plain<'a, 'q>),
    /// An object the scanner will not take (a backslash, a control character, over
    /// [`MAX_SCANNED_BYTES`]): serde's, without offering its text to the scanner again.
    Refused,
    /// Not an object, or not UTF-8: for the walk to open (gzip, base64) or reject (naming the byte).
    Other,
}

/// Reads a Cognito user-activity line of the plain shape (module docs) into a `Record` made in `slot`,
/// its `message` into `message_fields`; `None` for serde to decide. In place, and made only once the
/// first key is not another shape's (a CloudTrail record names `eventVersion` first): a `Record` is
/// about a kilobyte, and both returning one by value and making one per CloudTrail record showed in
/// the profile.
pub(super) fn cognito_record<'a, 's>(line: &Plain<'a, '_>, slot: &'s mut Option<Record<'a>>) -> Option<&'s Record<'a>> {
    let text = line.text;
    let mut scan = Scanner { text, bytes: text.as_bytes(), at: 0, quotes: line.quotes };
    let mut seen = Seen::default();
    scan.object(&RECORD_ORDER, |scan, key| {
        let bit = match key {
            "eventTimestamp" => 0,
            "eventSource" => 1,
            "logLevel" => 2,
            "logSourceId" => 3,
            "message" => MESSAGE_BIT,
            key if RECORD_KEYS.contains(&key) => return None,
            _ => return scan.skip(0),
        };
        let rec = slot.get_or_insert_with(Record::default);
        match bit {
            0 => rec.event_timestamp = scan.text()?,
            1 => rec.event_source = scan.text()?,
            2 => rec.log_level = scan.text()?,
            3 => rec.log_source_id = Some(log_source_id(scan)?),
            _ => message(scan, rec.message_fields.insert(Message::default()))?,
        }
        seen.first(bit)
    })?;
    scan.whitespace();
    (scan.at == text.len() && seen.has(MESSAGE_BIT)).then_some(())?;
    slot.as_ref()
}

/// `Seen` bit of the record's `message`.
const MESSAGE_BIT: u32 = 4;

/// How many bytes of a line [`Quotes`] indexes: 2 KiB, more than twice a real line. A longer line's
/// quotes past it are searched for word by word ([`quote`]).
const INDEXED_BYTES: usize = 2048;

/// Longest record offered to the scanner: 64 KiB. An export line is about a kilobyte; what is longer
/// (a CloudTrail file's `Records` document, a subscription payload) is another shape, and goes to serde
/// without the passes of [`Quotes::index`] over it.
const MAX_SCANNED_BYTES: usize = 64 * 1024;

/// Where a line's quotes are, one bit per byte of its first [`INDEXED_BYTES`], made in one pass that
/// also checks that the line holds no backslash and no control character, and whether it is ASCII (a
/// longer line's rest is checked by two more passes). The scanner never reads
/// those itself: inside a string JSON needs them escaped (an escape is serde's to read), outside one
/// they are invalid or rare whitespace. So in a line that passes, a string's content is everything up
/// to the next quote, and finding it is a look at a bitmap. One pass of 16-byte compares (SSE2, which
/// every x86-64 has) instead of a search per string and a pass of its own for the check: the function
/// that searched (`Scanner::string`) was 12 % of `--decode-only`'s samples.
#[derive(Default)]
pub(super) struct Quotes {
    words: [u64; INDEXED_BYTES / 64],
    /// Bytes indexed: the line's length, or [`INDEXED_BYTES`] for a longer line.
    indexed: usize,
    /// Every byte of the line is ASCII.
    ascii: bool,
}

impl Quotes {
    /// Indexes `bytes` (every word it covers is written, so a `Quotes` can be used again); false, as soon
    /// as one is found, when they hold a backslash or a control character (the index is then not to be
    /// read).
    #[inline]
    fn index(&mut self, bytes: &[u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: this CPU has AVX2 (just checked; the check is a cached flag).
            return unsafe { self.index_avx2(bytes) };
        }
        self.index_with(bytes, quotes_in)
    }

    /// [`index`](Self::index) 32 bytes a compare: its share of `--decode-only` went from 6 % to about 3 %.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn index_avx2(&mut self, bytes: &[u8]) -> bool {
        self.index_with(bytes, |block| {
            // SAFETY: called only where AVX2 is (this function's own requirement).
            unsafe { quotes_in_avx2(block) }
        })
    }

    #[inline(always)]
    fn index_with(&mut self, bytes: &[u8], quotes_in: impl Fn(&[u8; 64]) -> Block) -> bool {
        let indexed = bytes.len().min(INDEXED_BYTES);
        let (head, tail) = bytes.split_at(indexed);
        let quotes = self;
        quotes.indexed = indexed;
        quotes.ascii = true;
        let (blocks, rest) = head.as_chunks::<64>();
        for (word, block) in quotes.words.iter_mut().zip(blocks) {
            let found = quotes_in(block);
            if found.odd {
                return false;
            }
            *word = found.quotes;
            quotes.ascii &= found.ascii;
        }
        if !rest.is_empty() {
            // Padded with spaces: neither a quote nor a byte the scanner refuses.
            let mut block = [b' '; 64];
            block[..rest.len()].copy_from_slice(rest);
            let found = quotes_in(&block);
            if found.odd {
                return false;
            }
            quotes.words[head.len() / 64] = found.quotes;
            quotes.ascii &= found.ascii;
        }
        quotes.ascii &= tail.is_ascii();
        plain_bytes(tail)
    }

    /// Where the first quote at or after `from` in `bytes` (the indexed line) is.
    #[inline(always)]
    fn next(&self, bytes: &[u8], from: usize) -> Option<usize> {
        if from < self.indexed {
            // Words past the last indexed one are another line's.
            let last = (self.indexed - 1) / 64;
            let mut i = from / 64;
            let mut found = self.words[i] & !0u64 << (from % 64);
            loop {
                if found != 0 {
                    return Some(i * 64 + found.trailing_zeros() as usize);
                }
                if i == last {
                    break;
                }
                i += 1;
                found = self.words[i];
            }
        }
        let from = from.max(self.indexed);
        quote(bytes.get(from..)?).map(|i| from + i)
    }
}

/// What [`quotes_in`] finds in one 64-byte block.
struct Block {
    /// A bit per byte: set where a quote is.
    quotes: u64,
    /// It holds a backslash or a control character.
    odd: bool,
    /// Every byte is ASCII.
    ascii: bool,
}

/// The quotes of one 64-byte block as a bitmap, and whether it holds a backslash, a control character
/// or a byte beyond ASCII.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn quotes_in(block: &[u8; 64]) -> Block {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    // SAFETY: the intrinsics need SSE2, which this is compiled for (the `cfg`; every x86-64 has it), and
    // each load reads one 16-byte lane of `block`, in bounds.
    unsafe {
        let quote = _mm_set1_epi8(b'"' as i8);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let last_control = _mm_set1_epi8(0x1f);
        let mut quotes = 0u64;
        let mut odd = _mm_setzero_si128();
        let mut any = _mm_setzero_si128();
        for (i, lane) in block.as_chunks::<16>().0.iter().enumerate() {
            let x = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
            quotes |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(x, quote)) as u16) << (16 * i);
            // A byte is a control character when the smaller of it and 0x1f is itself.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(x, last_control), x);
            odd = _mm_or_si128(odd, _mm_or_si128(control, _mm_cmpeq_epi8(x, backslash)));
            any = _mm_or_si128(any, x);
        }
        // `movemask` gathers each byte's top bit: set in a control or backslash match, and in a non-ASCII byte.
        Block { quotes, odd: _mm_movemask_epi8(odd) != 0, ascii: _mm_movemask_epi8(any) == 0 }
    }
}

/// The same with AVX2 (two 32-byte lanes), for CPUs that have it (checked at run time by
/// [`Quotes::index`]).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn quotes_in_avx2(block: &[u8; 64]) -> Block {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let quote = _mm256_set1_epi8(b'"' as i8);
    let backslash = _mm256_set1_epi8(b'\\' as i8);
    let last_control = _mm256_set1_epi8(0x1f);
    let (low, high) = block.split_at(32);
    // SAFETY: each load reads 32 bytes of `block`, in bounds.
    let (low, high) = unsafe {
        (_mm256_loadu_si256(low.as_ptr().cast::<__m256i>()), _mm256_loadu_si256(high.as_ptr().cast::<__m256i>()))
    };
    let quotes = u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(low, quote)) as u32)
        | u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(high, quote)) as u32) << 32;
    // As in the SSE2 version: a control character is its own minimum with 0x1f.
    let odd_low =
        _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(low, last_control), low), _mm256_cmpeq_epi8(low, backslash));
    let odd_high = _mm256_or_si256(
        _mm256_cmpeq_epi8(_mm256_min_epu8(high, last_control), high),
        _mm256_cmpeq_epi8(high, backslash),
    );
    let odd = _mm256_or_si256(odd_low, odd_high);
    Block { quotes, odd: _mm256_movemask_epi8(odd) != 0, ascii: _mm256_movemask_epi8(_mm256_or_si256(low, high)) == 0 }
}

/// The same, a byte at a time, where SSE2 is not there (and in a test, against the SSE2 one).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
fn quotes_in(block: &[u8; 64]) -> Block {
    quotes_in_bytewise(block)
}

#[cfg(any(test, not(all(target_arch = "x86_64", target_feature = "sse2"))))]
fn quotes_in_bytewise(block: &[u8; 64]) -> Block {
    let quotes = block.iter().enumerate().fold(0u64, |m, (i, &b)| m | u64::from(b == b'"') << i);
    Block { quotes, odd: !plain_bytes(block), ascii: block.is_ascii() }
}

/// Whether `bytes` hold no backslash and no control character (see [`Quotes`]): one branch-free pass,
/// which the compiler vectorises.
#[inline]
fn plain_bytes(bytes: &[u8]) -> bool {
    !bytes.iter().fold(false, |odd, &b| odd | (b < 0x20) | (b == b'\\'))
}

/// Where the first quote in `bytes` is, for a line longer than [`Quotes`] indexes. Eight bytes at a
/// time, inline: most strings end within the first two words, and a call into `memchr` per string (an
/// indirect call to its SIMD routine) cost more than the search. The lowest byte the has-zero arithmetic
/// marks is a real quote (a borrow only marks bytes above a real one).
#[inline]
fn quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        let x = u64::from_le_bytes(le) ^ QUOTES;
        let marks = x.wrapping_sub(ONES) & !x & HIGH;
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr(b'"', &bytes[at..]).map(|i| at + i)
}

/// Whether `bytes` start with `token`, compared eight bytes at a time inline: `<[u8]>::starts_with` calls
/// `memcmp`, and that call per key was 7 % of `--decode-only`. Inlined: called, it was 5 %.
#[inline(always)]
fn starts_with(bytes: &[u8], token: &[u8]) -> bool {
    let Some(head) = bytes.get(..token.len()) else { return false };
    let word = |b: &[u8], at: usize| {
        let mut le = [0u8; 8];
        le.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(le)
    };
    if token.len() < 8 {
        return head == token;
    }
    let last = token.len() - 8;
    (0..last).step_by(8).all(|at| word(head, at) == word(token, at)) && word(head, last) == word(token, last)
}

/// `logSourceId`: `{"userPoolId": "..."}`.
fn log_source_id<'a>(scan: &mut Scanner<'a, '_>) -> Option<LogSourceId<'a>> {
    let mut id = LogSourceId::default();
    let mut seen = Seen::default();
    scan.object(&LOG_SOURCE_ID_ORDER, |scan, key| match key {
        "userPoolId" => {
            id.user_pool_id = scan.text()?;
            seen.first(0)
        }
        _ => scan.skip(0),
    })?;
    Some(id)
}

/// The `message` object into `m`: every field `Message` reads, by its serde name. `details` (only the
/// `userNotification` export has it, and it is skipped) goes to serde.
fn message<'a>(scan: &mut Scanner<'a, '_>, m: &mut Message<'a>) -> Option<()> {
    let mut seen = Seen::default();
    scan.object(&MESSAGE_ORDER, |scan, key| {
        let (bit, field) = match key {
            "eventId" => (0, &mut m.event_id),
            "eventType" => (1, &mut m.event_type),
            "userSub" => (2, &mut m.user_sub),
            "userName" => (3, &mut m.user_name),
            "userPoolId" => (4, &mut m.user_pool_id),
            "clientId" => (5, &mut m.client_id),
            "eventResponse" => (6, &mut m.event_response),
            "creationDate" => (7, &mut m.creation_date),
            "riskLevel" => (8, &mut m.risk_level),
            "riskDecision" => (9, &mut m.risk_decision),
            "compromisedCredentialDetected" => (10, &mut m.compromised_credential_detected),
            "deviceName" => (11, &mut m.device_name),
            "ipAddress" => (12, &mut m.ip_address),
            "city" => (13, &mut m.city),
            "country" => (14, &mut m.country),
            "challenges" => {
                m.challenges = challenges(scan)?;
                return seen.first(15);
            }
            "details" => return None,
            _ => return scan.skip(0),
        };
        *field = scan.text()?;
        seen.first(bit)
    })
}

/// `challenges` as an array of objects (the export's shape), read with the same rules as serde's reading
/// of it (`challenges::Entry`); any other shape goes to serde.
fn challenges(scan: &mut Scanner) -> Option<Challenges> {
    let mut factors = Challenges::default();
    scan.array(|scan| {
        let mut entry = Entry::default();
        scan.object(&CHALLENGE_ORDER, |scan, key| {
            if let Some(field) = Entry::field_of(key) {
                let value = scan.text()?;
                entry.set(field, value.get());
                Some(())
            } else {
                scan.skip(0)
            }
        })?;
        entry.apply(&mut factors.0);
        Some(())
    })?;
    Some(factors)
}

/// Which known keys of one object were read, by bit, to refuse a repeated one as serde does.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    /// `Some` the first time key number `bit` is read in this object, `None` (serde refuses it) after.
    #[inline]
    fn first(&mut self, bit: u32) -> Option<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return None;
        }
        self.0 |= mask;
        Some(())
    }

    fn has(&self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }
}

/// A key as an export line writes it: its name, and its token (quoted, with the colon), also with the
/// comma that comes before it after the object's first key.
struct Key {
    name: &'static str,
    token: &'static [u8],
    after_comma: &'static [u8],
}

/// The [`Key`]s of `names`, in order.
macro_rules! keys {
    ($($name:literal),* $(,)?) => {
        [$(Key {
            name: $name,
            token: concat!("\"", $name, "\":").as_bytes(),
            after_comma: concat!(",\"", $name, "\":").as_bytes(),
        }),*]
    };
}

/// The order the export writes a line's keys in (the simulator's; AWS's documented example puts
/// `logSourceId` last, which costs one search).
const RECORD_ORDER: [Key; 5] = keys!["eventTimestamp", "eventSource", "logLevel", "logSourceId", "message"];
const LOG_SOURCE_ID_ORDER: [Key; 1] = keys!["userPoolId"];
/// `message`'s keys in the order of AWS's documented example (aws-formats.md §1), which the simulator
/// follows without the three `eventFeedback` ones.
const MESSAGE_ORDER: [Key; 23] = keys![
    "version",
    "eventId",
    "eventType",
    "userSub",
    "userName",
    "userPoolId",
    "clientId",
    "creationDate",
    "eventResponse",
    "riskLevel",
    "riskDecision",
    "challenges",
    "deviceName",
    "ipAddress",
    "requestId",
    "idpName",
    "compromisedCredentialDetected",
    "city",
    "country",
    "eventFeedbackValue",
    "eventFeedbackDate",
    "eventFeedbackProvider",
    "hasContextData",
];
const CHALLENGE_ORDER: [Key; 2] = keys!["challengeName", "challengeResponse"];

/// A cursor over the record's bytes. Every method returns `None` where the text leaves the plain shape.
struct Scanner<'a, 'q> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// The line's quotes: built once, borrowed (it is 272 bytes, and moving it showed in the profile).
    quotes: &'q Quotes,
}

impl<'a> Scanner<'a, '_> {
    /// Skips JSON whitespace (exactly what serde_json skips: space, tab, line feed, carriage return).
    #[inline]
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed. Compact JSON (the export's) has none, so
    /// the byte at the cursor is looked at first.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        match self.bytes.get(self.at) {
            Some(&b) if b > b' ' => Some(b),
            _ => {
                self.whitespace();
                self.bytes.get(self.at).copied()
            }
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string, the cursor on its opening quote; its content. The line holds no backslash or control
    /// character ([`Quotes`]), so the content is everything up to the next quote.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.at + 1;
        let end = self.quotes.next(self.bytes, start)?;
        self.at = end + 1;
        // The quotes are ASCII, so both ends are character boundaries of the (valid UTF-8) text.
        self.text.get(start..end)
    }

    /// A string value as [`Text`]. Inlined into each field's read: called, it returned the 24-byte
    /// `Option<Text>` through memory, and the caller's wider reload of it stalled on the store (a
    /// quarter of `cognito_record`'s samples sat on that reload).
    #[inline(always)]
    fn text(&mut self) -> Option<Text<'a>> {
        if self.peek()? != b'"' {
            return None;
        }
        Some(Text(Some(Cow::Borrowed(self.string()?))))
    }

    /// An object: calls `field` with the cursor on each value (after its key's colon), which must read
    /// the value; stops at the first `None`. `order` is the order its keys are usually written in: the
    /// next one expected is compared whole (quotes and colon included) before any search for the key's
    /// end, and most keys of an export line are found that way.
    #[inline]
    fn object(&mut self, order: &[Key], mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut next = 0;
        // The key just read from its token with the comma before it, if it was.
        let mut known: Option<&'static str> = None;
        loop {
            let key = match known.take() {
                Some(key) => key,
                None => {
                    if self.peek()? != b'"' {
                        return None;
                    }
                    match order.get(next) {
                        Some(expected) if starts_with(self.bytes.get(self.at..)?, expected.token) => {
                            self.at += expected.token.len();
                            next += 1;
                            expected.name
                        }
                        _ => {
                            let key = self.string()?;
                            self.expect(b':')?;
                            next = order.iter().position(|k| k.name == key).map_or(next, |i| i + 1);
                            key
                        }
                    }
                }
            };
            self.whitespace();
            field(self, key)?;
            // The export's way first: the next key expected, right after a comma (`,"key":`), read in
            // one compare instead of a look for the comma and another for the key's quote.
            if let Some(expected) = order.get(next) {
                if starts_with(self.bytes.get(self.at..)?, expected.after_comma) {
                    self.at += expected.after_comma.len();
                    next += 1;
                    known = Some(expected.name);
                    continue;
                }
            }
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array: calls `element` with the cursor on each element, which must read it.
    #[inline]
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Skips (validating) a value of a field nothing reads: a string, or an object or array of values.
    /// A string right at the cursor, the common case (`version`, `requestId`...), is skipped inline.
    #[inline(always)]
    fn skip(&mut self, depth: u32) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b'"') {
            return self.string().map(drop);
        }
        self.skip_any(depth)
    }

    /// [`skip`](Self::skip) for any value, after whitespace.
    fn skip_any(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(&[], |scan, _| scan.skip(depth + 1)),
            b'[' => self.array(|scan| scan.skip(depth + 1)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde::de::{self, Deserialize, Deserializer, Visitor};

    use super::*;
    use crate::decode::{decode_record, decode_record_with_serde, Decoded};
    use crate::event::{LogFormat, Origin};
    use crate::simulate::rng::Rng;

    /// The field names serde reads for `T`, captured from its `deserialize_struct` call.
    fn serde_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Introspect<'f>(&'f mut &'static [&'static str]);

        impl<'de> Deserializer<'de> for Introspect<'_> {
            type Error = de::value::Error;

            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }

            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("fields taken"))
            }

            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
                unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
            }
        }

        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Introspect(&mut fields));
        fields
    }

    #[test]
    fn starts_with_compares_every_byte() {
        let token = b"\"compromisedCredentialDetected\":";
        for len in 1..token.len() {
            let token = &token[..len];
            assert!(starts_with(b"\"compromisedCredentialDetected\":\"false\"", token));
            for i in 0..len {
                let mut other = token.to_vec();
                other[i] ^= 1;
                other.extend_from_slice(b"xxxxxxxx");
                assert!(!starts_with(&other, token), "{len} {i}");
            }
            assert!(!starts_with(&token[..len - 1], token));
        }
    }

    #[test]
    fn quote_finds_the_first_quote_in_any_word() {
        for len in 0..40 {
            for at in 0..=len {
                let mut bytes = "é".repeat(len).into_bytes();
                bytes.truncate(len);
                let want = (at < len).then_some(at);
                if at < len {
                    bytes[at] = b'"';
                    bytes.iter_mut().skip(at + 1).step_by(3).for_each(|b| *b = b'"');
                }
                let bytes: Vec<u8> = bytes.into_iter().map(|b| if b == b'"' { b } else { b | 0x80 }).collect();
                assert_eq!(quote(&bytes), want, "{len} {at}");
            }
        }
        assert_eq!(quote(b"abc\x21\x23\x22"), Some(5));
        assert_eq!(quote(b"\x01\x00\x22!"), Some(2));
    }

    /// [`quotes_in_avx2`] where this CPU has AVX2.
    fn avx2_quotes_in(block: &[u8; 64]) -> Option<Block> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: checked just above.
            return Some(unsafe { quotes_in_avx2(block) });
        }
        None
    }

    /// The index finds every quote [`quote`] finds, from every place, in lines shorter and longer than it
    /// covers, and refuses a line with a backslash or a control character anywhere. The SSE2, AVX2 and
    /// bytewise passes agree on every block.
    #[test]
    fn the_quote_index_agrees_with_the_search_and_refuses_what_the_scanner_does_not_read() {
        let mut rng = Rng::new(7, 0);
        let mut quotes = Quotes::default();
        for (len, high) in
            [0, 1, 15, 16, 63, 64, 65, 900, 2047, 2048, 2049, 2100, 4200].into_iter().flat_map(|n| [(n, 0), (n, 1)])
        {
            let line: Vec<u8> = (0..len)
                .map(|i| match rng.below(12) {
                    // One byte beyond ASCII at most, placed anywhere, in half the lines.
                    _ if high == 1 && i == len / 3 + (len * 7) % 11 % len.max(1) => 0xc3,
                    0 => b'"',
                    1 => 0x7f,
                    _ => b'a' + rng.below(26) as u8,
                })
                .collect();
            // One `Quotes` for every line: each indexing overwrites what the last one left.
            assert!(quotes.index(&line), "no backslash or control character");
            for block in line.as_chunks::<64>().0 {
                let (sse, bytewise) = (quotes_in(block), quotes_in_bytewise(block));
                assert_eq!((sse.quotes, sse.odd, sse.ascii), (bytewise.quotes, bytewise.odd, bytewise.ascii));
                if let Some(avx) = avx2_quotes_in(block) {
                    assert_eq!((avx.quotes, avx.odd, avx.ascii), (bytewise.quotes, bytewise.odd, bytewise.ascii));
                }
            }
            assert_eq!(quotes.ascii, line.is_ascii(), "{len} {high}");
            for from in 0..=len + 1 {
                let want = line.get(from..).and_then(quote).map(|i| from + i);
                assert_eq!(quotes.next(&line, from), want, "{len} from {from}");
            }
            for at in (0..len).step_by(7) {
                for odd in [b'\\', 0, b'\n', 0x1f] {
                    let mut bad = line.clone();
                    bad[at] = odd;
                    assert!(!Quotes::default().index(&bad), "{len}: {odd} at {at}");
                    if let Some(block) = bad.get(at / 64 * 64..at / 64 * 64 + 64) {
                        let block: &[u8; 64] = block.try_into().expect("64 bytes");
                        assert!(quotes_in(block).odd && quotes_in_bytewise(block).odd);
                        assert!(avx2_quotes_in(block).is_none_or(|avx| avx.odd));
                    }
                }
            }
        }
    }

    fn scans(line: &str) -> bool {
        Plain::text(line, &mut Quotes::default()).is_some_and(|plain| cognito_record(&plain, &mut None).is_some())
    }

    const PLAIN: &str = r#"{"eventTimestamp":"1795132801000","eventSource":"USER_ACTIVITY","logLevel":"INFO","logSourceId":{"userPoolId":"us-east-1_Demo0001"},"message":{"version":"1","eventId":"3685cc2b","eventType":"SignIn","userSub":"b81080d6","userName":"george.reyes1096","userPoolId":"us-east-1_Demo0001","clientId":"51p95lrfsg","creationDate":"Thu Sep 14 12:03:19 UTC 2023","eventResponse":"Pass","riskLevel":"","riskDecision":"PASS","challenges":[{"challengeName":"Password","challengeResponse":"Success"}],"deviceName":"Chrome 126, Windows 10","ipAddress":"69.53.92.193","requestId":"04f612c6","idpName":"","compromisedCredentialDetected":"false","city":"Tokyo","country":"Japan","hasContextData":"true"}}"#;

    #[test]
    fn record_keys_are_every_field_record_reads() {
        let mut want: Vec<_> = serde_fields::<Record>().to_vec();
        let mut have = RECORD_KEYS.to_vec();
        want.sort_unstable();
        have.sort_unstable();
        assert_eq!(have, want);
    }

    /// serde refuses a repeated known key and takes a repeated unknown one: so does the scanner, which
    /// shows it reads every field `Message`, `LogSourceId` and the record read (and no other).
    #[test]
    fn every_field_serde_reads_is_read_once_and_unknown_ones_are_skipped() {
        assert!(scans(PLAIN));
        let message = serde_fields::<Message>();
        assert!(message.len() >= 17, "{message:?}");
        for key in message.iter().chain(["someNewField"].iter()) {
            let value = if *key == "challenges" { "[]" } else { r#""x""# };
            let line = |fields: &str| format!(r#"{{"eventTimestamp":"1795132801000","message":{{{fields}}}}}"#);
            let once = line(&format!(r#""{key}":{value}"#));
            let twice = line(&format!(r#""{key}":{value}, "{key}":{value}"#));
            let known = *key != "someNewField";
            // `details` marks the userNotification export: serde's to read.
            assert_eq!(scans(&once), *key != "details", "{key} once");
            assert_eq!(scans(&twice), !known, "{key} twice");
        }
        for key in serde_fields::<LogSourceId>() {
            let twice = PLAIN.replacen(r#""userPoolId":"#, &format!(r#""{key}":"a","userPoolId":"#), 1);
            assert!(!scans(&twice), "logSourceId.{key} twice");
        }
        for key in RECORD_KEYS {
            let line = PLAIN.replacen('{', &format!(r#"{{"{key}":"x","#), 1);
            assert!(!scans(&line), "{key}: a second copy, or another shape's key");
        }
        assert!(scans(&PLAIN.replacen('{', r#"{"other":{"a":["b",{"c":"d"}]},"#, 1)));
    }

    #[test]
    fn anything_but_the_plain_shape_is_left_to_serde() {
        for odd in [
            PLAIN.replacen("1795132801000", "1795132801\\u0030", 1),
            PLAIN.replacen("Tokyo", "To\tkyo", 1),
            PLAIN.replacen(",", ",\n", 1),
            PLAIN.replacen(r#""Tokyo""#, "1", 1),
            PLAIN.replacen(r#""Tokyo""#, "null", 1),
            PLAIN.replacen(r#""Tokyo""#, "true", 1),
            PLAIN.replacen(r#""hasContextData":"true""#, r#""hasContextData":7"#, 1),
            PLAIN.replacen(r#""Password""#, "1", 1),
            PLAIN.replacen("}}", "},}", 1),
            PLAIN.replacen(",", ",,", 1),
            PLAIN.replacen(":", "", 1),
            format!("{PLAIN}{PLAIN}"),
            format!("{PLAIN} x"),
            PLAIN[..PLAIN.len() - 1].to_owned(),
            PLAIN.replacen(r#""message":{"#, r#""message":{"details":{},"#, 1),
            PLAIN.replacen(r#"[{"challengeName""#, r#"["Password:Success",{"challengeName""#, 1),
            PLAIN.replacen(r#""version":"1""#, &format!(r#""version":{}"x"{}"#, "[".repeat(40), "]".repeat(40)), 1),
            r#"{"eventTimestamp":"1795132801000"}"#.to_owned(),
            r#"{"eventTimestamp":"1795132801000","message":"text"}"#.to_owned(),
        ] {
            assert!(!scans(&odd), "{odd}");
        }
        for plain in [PLAIN.replace(':', " : ").replace(',', "  , "), PLAIN.replace("Tokyo", "東京 é")] {
            assert!(scans(&plain), "{plain}");
        }
    }

    fn both(bytes: &[u8], forced: Option<LogFormat>) -> (Vec<Decoded>, Vec<Decoded>) {
        let origin = Origin::new("t.jsonl".into(), 3);
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        decode_record(bytes, &origin, forced, &mut |d| fast.push(d));
        decode_record_with_serde(bytes, &origin, forced, &mut |d| slow.push(d));
        (fast, slow)
    }

    const FORCED: [Option<LogFormat>; 3] = [None, Some(LogFormat::CognitoUserActivity), Some(LogFormat::CloudTrail)];

    /// Every fixture, whole and line by line, decodes to the same events, skips and rejections (with the
    /// same reasons and texts) with the scanner as without it.
    #[test]
    fn the_fixtures_decode_the_same_with_and_without_the_scanner() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut files = 0;
        let mut scanned = 0;
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                files += 1;
                let mut records: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
                records.push(&bytes);
                for record in records {
                    scanned += usize::from(std::str::from_utf8(record).is_ok_and(|t| scans(t.trim())));
                    for forced in FORCED {
                        let (fast, slow) = both(record, forced);
                        assert_eq!(fast, slow, "{}: {}", path.display(), String::from_utf8_lossy(record));
                    }
                }
            }
        }
        assert!(files > 50, "{files} fixture files");
        assert!(scanned >= 20, "only {scanned} fixture records took the scanner");
    }

    /// Values to put in place of others or in new fields: every JSON type, the texts the decoders give
    /// meaning to, and the byte sequences the scanner must not take.
    const VALUES: [&str; 24] = [
        r#""x""#,
        r#""""#,
        r#""null""#,
        "null",
        "1",
        "-0.5e3",
        "true",
        "[]",
        r#"["a","b"]"#,
        "{}",
        r#"{"a":"b"}"#,
        r#""1795132801000""#,
        r#""2026-11-20T00:00:00Z""#,
        r#""1795""#,
        r#"" 10.1.2.3 ""#,
        r#""USER_NOTIFICATION""#,
        r#""cognito-idp.amazonaws.com""#,
        r#""ERROR""#,
        r#"[{"challengeName":"Mfa","challengeResponse":"Failure"},{"ChallengeName":"PASSWORD","challengeresponse":"success"}]"#,
        r#"[{"challengeName":"Mfa"},"Password:Success",1]"#,
        r#""a\"b""#,
        r#""\u00e9""#,
        r#""Thu Sep 14 12:03:19 UTC 2023""#,
        r#"{"userPoolId":"us-east-1_X","userPoolId":"y"}"#,
    ];

    /// Keys to add: every key serde reads at either level, and an unknown one.
    fn keys() -> Vec<&'static str> {
        let mut keys = RECORD_KEYS.to_vec();
        keys.extend_from_slice(serde_fields::<Message>());
        keys.extend(["userPoolId", "challengeName", "someNewField"]);
        keys
    }

    const CHARS: [&str; 18] = [
        "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "\t", "0", "n", "\u{1}", "\u{1f}", "\u{7f}", "é", "a",
        "\u{feff}",
    ];

    /// One random edit of `line`: a key added with a value, a value replaced, a character inserted,
    /// deleted or replaced, or the line cut.
    fn mutate(line: &str, rng: &mut Rng, keys: &[&str]) -> String {
        let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
        let boundaries: Vec<usize> = (0..=line.len()).filter(|&i| line.is_char_boundary(i)).collect();
        let at = boundaries[pick(rng, boundaries.len())];
        match pick(rng, 6) {
            0 => {
                let opens: Vec<usize> = line.match_indices('{').map(|(i, _)| i + 1).collect();
                let Some(&open) = opens.get(pick(rng, opens.len().max(1))) else { return line.to_owned() };
                let field = format!(r#""{}":{},"#, keys[pick(rng, keys.len())], VALUES[pick(rng, VALUES.len())]);
                format!("{}{field}{}", &line[..open], &line[open..])
            }
            1 => {
                // The value after the first `":` at or after a random place.
                let Some(colon) = line[at..].find("\":").map(|i| at + i + 2) else { return line.to_owned() };
                let rest = &line[colon..];
                let end = rest.trim_start().strip_prefix('"').and_then(|s| s.find('"')).map(|i| i + 2);
                let end =
                    end.map_or(rest.find([',', '}']).unwrap_or(0), |e| e + (rest.len() - rest.trim_start().len()));
                format!("{}{}{}", &line[..colon], VALUES[pick(rng, VALUES.len())], &line[colon + end..])
            }
            2 => format!("{}{}{}", &line[..at], CHARS[pick(rng, CHARS.len())], &line[at..]),
            3 | 4 => {
                let next = boundaries.iter().copied().find(|&b| b > at).unwrap_or(at);
                let with = if pick(rng, 2) == 0 { "" } else { CHARS[pick(rng, CHARS.len())] };
                format!("{}{with}{}", &line[..at], &line[next..])
            }
            _ => line[..at].to_owned(),
        }
    }

    /// A fuzz-style corpus: plain lines (this shape, the fixtures' Cognito lines) with one to three random
    /// edits each, decoded with and without the scanner. Seeded: a failure names the seed's line.
    #[test]
    fn mutated_lines_decode_the_same_with_and_without_the_scanner() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decode/cognito_lines.jsonl");
        let fixture = std::fs::read_to_string(fixture).unwrap();
        let mut bases = vec![PLAIN.to_owned()];
        bases.extend(fixture.lines().filter(|l| l.contains("eventTimestamp")).map(str::to_owned));
        let keys = keys();
        let mut rng = Rng::new(18, 0);
        let (mut scanned, mut left) = (0, 0);
        for i in 0..20_000 {
            let mut line = bases[i % bases.len()].clone();
            for _ in 0..=rng.below(3) {
                line = mutate(&line, &mut rng, &keys);
            }
            if scans(line.trim()) {
                scanned += 1;
            } else {
                left += 1;
            }
            for forced in FORCED {
                let (fast, slow) = both(line.as_bytes(), forced);
                assert_eq!(fast, slow, "mutated line {i}: {line}");
            }
        }
        // Both paths are exercised: a fair share of the edits keep the plain shape, most leave it.
        assert!(scanned > 2_000 && left > 2_000, "{scanned} scanned, {left} left to serde");
    }
}

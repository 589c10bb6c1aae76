//! The XML body of the platform link (docs/protocol.md §1.1): a bounded, strict parser over an
//! already-decoded `&str` (quick-xml), and the canonical response writer.
//!
//! Shape: optional declaration, root `<Result>`, flat child elements (fields), and list
//! elements whose `<Row>` children each hold flat fields. DTDs and entities other than the
//! five predefined ones (plus numeric character references) are refused.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::charset::{self, Charset, CharsetError};

/// Bounds of the XML parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XmlLimits {
    /// Deepest element nesting allowed; the root is depth 1. Default 8.
    pub depth_max: usize,
    /// Most elements (start or empty tags) allowed in one document. Default 4096.
    pub elements_max: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            depth_max: 8,
            elements_max: 4096,
        }
    }
}

/// One `<Row>` of a list: (element name, unescaped and trimmed text) in document order.
pub type XmlRow = Vec<(String, String)>;

/// A parsed body: flat fields of `<Result>` in document order, and lists (a child that
/// contains elements) with one `Vec` of (name, text) per `<Row>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XmlBody {
    /// (element name, unescaped and trimmed text) of each direct child of `<Result>`
    /// that holds text or nothing.
    pub fields: Vec<(String, String)>,
    /// (list element name, rows); each row lists its children as (name, text).
    pub lists: Vec<(String, Vec<XmlRow>)>,
}

/// An XML body fault (→ `YQ9977`). Offsets are byte offsets in the decoded text; element
/// names are included where known, text content never.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The document has no root element.
    #[error("empty XML document")]
    Empty,
    /// Not well-formed (unclosed or mismatched tags, bad syntax).
    #[error("malformed XML at offset {offset}")]
    Syntax {
        /// Byte offset where the fault was detected.
        offset: usize,
    },
    /// A `<!DOCTYPE ...>` (DTD) is present.
    #[error("DTD refused at offset {offset}")]
    Doctype {
        /// Byte offset.
        offset: usize,
    },
    /// An entity other than the five predefined ones, or a bad character reference.
    #[error("unknown entity or bad character reference at offset {offset} in element {element}")]
    Entity {
        /// Byte offset of the text holding it.
        offset: usize,
        /// Element containing the text.
        element: String,
    },
    /// The XML declaration is misplaced or unreadable.
    #[error("bad XML declaration at offset {offset}")]
    Declaration {
        /// Byte offset.
        offset: usize,
    },
    /// The declaration names an encoding other than the header's field 3.
    #[error("XML declaration encoding does not match header charset {declared:?}")]
    CharsetMismatch {
        /// Charset named by the header.
        declared: Charset,
    },
    /// The root element is not `Result`.
    #[error("root element at offset {offset} is not Result")]
    Root {
        /// Byte offset.
        offset: usize,
    },
    /// Nesting deeper than `depth_max`.
    #[error("nesting deeper than {max} at offset {offset}")]
    TooDeep {
        /// Byte offset.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// More than `elements_max` elements.
    #[error("more than {max} elements at offset {offset}")]
    TooManyElements {
        /// Byte offset.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// Content after the root element, or non-whitespace text outside any field.
    #[error("unexpected content at offset {offset}")]
    Trailing {
        /// Byte offset.
        offset: usize,
    },
    /// Non-UTF-8 element name (cannot happen with `&str` input; kept for completeness).
    #[error("bad element name at offset {offset}")]
    Name {
        /// Byte offset.
        offset: usize,
    },
}

fn pos(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

fn name_of(e: &BytesStart<'_>, offset: usize) -> Result<String, XmlError> {
    std::str::from_utf8(e.name().as_ref())
        .map(str::to_owned)
        .map_err(|_| XmlError::Name { offset })
}

fn encoding_matches(declared: Charset, name: &[u8]) -> bool {
    let eq = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    match declared {
        Charset::Gbk => eq("GBK") || eq("GB2312"),
        Charset::Utf8 => eq("UTF-8") || eq("UTF8"),
    }
}

/// What the element at each depth is being used for.
enum Frame {
    /// The root `<Result>` (depth 1).
    Root,
    /// A direct child of the root: a field until a child element appears, then a list.
    Child {
        name: String,
        text: String,
        rows: Option<Vec<XmlRow>>,
    },
    /// A `<Row>` of a list (depth 3).
    Row { fields: Vec<(String, String)> },
    /// A field of a row (depth 4).
    RowField { name: String, text: String },
    /// Anything else (ignored, still counted and bounded).
    Ignored,
}

/// Parses a body already decoded from `declared` (§1.1). See the module docs for the
/// shape; faults are listed on [`XmlError`]. Field texts are unescaped and trimmed of
/// surrounding XML white space (space, tab, CR, LF); `<A/>` and `<A></A>` give an empty
/// string. A byte-order mark (U+FEFF) before the document is skipped when `declared` is
/// UTF-8. Comments and processing instructions are ignored; CDATA counts as text.
pub fn parse_body(text: &str, declared: Charset, limits: &XmlLimits) -> Result<XmlBody, XmlError> {
    let text = if declared == Charset::Utf8 {
        text.strip_prefix('\u{feff}').unwrap_or(text)
    } else {
        text
    };
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.check_comments = true;

    let mut body = XmlBody {
        fields: Vec::with_capacity(16),
        lists: Vec::new(),
    };
    let mut stack: Vec<Frame> = Vec::with_capacity(limits.depth_max.min(64));
    let mut elements = 0usize;
    let mut root_done = false;

    loop {
        let start = pos(&reader);
        let event = reader.read_event().map_err(|e| match e {
            quick_xml::Error::Escape(_) => XmlError::Entity {
                offset: start,
                element: String::new(),
            },
            _ => XmlError::Syntax {
                offset: usize::try_from(reader.error_position()).unwrap_or(start),
            },
        })?;
        match event {
            Event::Eof => break,
            Event::Decl(decl) => {
                if start != 0 {
                    return Err(XmlError::Declaration { offset: start });
                }
                if let Some(enc) = decl.encoding() {
                    let enc = enc.map_err(|_| XmlError::Declaration { offset: start })?;
                    if !encoding_matches(declared, &enc) {
                        return Err(XmlError::CharsetMismatch { declared });
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype { offset: start }),
            Event::Comment(_) | Event::PI(_) => {}
            Event::Start(_) | Event::Empty(_) if root_done => {
                return Err(XmlError::Trailing { offset: start });
            }
            Event::Start(e) => {
                elements = count_element(elements, stack.len(), limits, start)?;
                let frame = open_element(&mut stack, &e, start)?;
                stack.push(frame);
            }
            Event::Empty(e) => {
                elements = count_element(elements, stack.len(), limits, start)?;
                let frame = open_element(&mut stack, &e, start)?;
                close_element(&mut stack, frame, &mut body);
                root_done = stack.is_empty();
            }
            Event::End(_) => {
                let Some(frame) = stack.pop() else {
                    return Err(XmlError::Syntax { offset: start });
                };
                close_element(&mut stack, frame, &mut body);
                if stack.is_empty() {
                    root_done = true;
                }
            }
            Event::Text(t) => {
                let element_name = || match stack.last() {
                    Some(Frame::Child { name, .. }) | Some(Frame::RowField { name, .. }) => {
                        name.clone()
                    }
                    _ => String::new(),
                };
                let unescaped = t.unescape().map_err(|_| XmlError::Entity {
                    offset: start,
                    element: element_name(),
                })?;
                append_text(&mut stack, &unescaped, start)?;
            }
            Event::CData(c) => {
                let raw = std::str::from_utf8(c.as_ref())
                    .map_err(|_| XmlError::Syntax { offset: start })?;
                append_text(&mut stack, raw, start)?;
            }
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Syntax { offset: text.len() });
    }
    if !root_done {
        return Err(XmlError::Empty);
    }
    Ok(body)
}

/// Counts one more element at nesting `depth` (0 for the root), enforcing the limits.
fn count_element(
    elements: usize,
    depth: usize,
    limits: &XmlLimits,
    offset: usize,
) -> Result<usize, XmlError> {
    let elements = elements.saturating_add(1);
    if elements > limits.elements_max {
        return Err(XmlError::TooManyElements {
            offset,
            max: limits.elements_max,
        });
    }
    if depth >= limits.depth_max {
        return Err(XmlError::TooDeep {
            offset,
            max: limits.depth_max,
        });
    }
    Ok(elements)
}

/// Decides what a new element is, from its parent.
fn open_element(stack: &mut [Frame], e: &BytesStart<'_>, offset: usize) -> Result<Frame, XmlError> {
    match stack.last_mut() {
        None => {
            if e.name().as_ref() == b"Result" {
                Ok(Frame::Root)
            } else {
                Err(XmlError::Root { offset })
            }
        }
        Some(Frame::Root) => Ok(Frame::Child {
            name: name_of(e, offset)?,
            text: String::new(),
            rows: None,
        }),
        Some(Frame::Child { rows, .. }) => {
            // A child element turns this field into a list.
            rows.get_or_insert_with(Vec::new);
            if e.name().as_ref() == b"Row" {
                Ok(Frame::Row { fields: Vec::new() })
            } else {
                Ok(Frame::Ignored)
            }
        }
        Some(Frame::Row { .. }) => Ok(Frame::RowField {
            name: name_of(e, offset)?,
            text: String::new(),
        }),
        Some(Frame::RowField { .. }) | Some(Frame::Ignored) => Ok(Frame::Ignored),
    }
}

/// Trims XML white space (space, tab, CR, LF) only; other Unicode spaces such as the
/// ideographic space U+3000 are content.
fn xml_trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

/// [`xml_trim`] on an owned string, reusing its buffer when nothing is trimmed.
fn trimmed_owned(text: String) -> String {
    let trimmed = xml_trim(&text);
    if trimmed.len() == text.len() {
        text
    } else {
        trimmed.to_owned()
    }
}

/// Hands a finished element to its parent (or to the body).
fn close_element(stack: &mut [Frame], frame: Frame, body: &mut XmlBody) {
    match frame {
        Frame::Root | Frame::Ignored => {}
        Frame::Child { name, text, rows } => match rows {
            None => body.fields.push((name, trimmed_owned(text))),
            Some(rows) => body.lists.push((name, rows)),
        },
        Frame::Row { fields } => {
            if let Some(Frame::Child {
                rows: Some(rows), ..
            }) = stack.last_mut()
            {
                rows.push(fields);
            }
        }
        Frame::RowField { name, text } => {
            if let Some(Frame::Row { fields }) = stack.last_mut() {
                fields.push((name, trimmed_owned(text)));
            }
        }
    }
}

/// Adds text to the open field; non-blank text anywhere else is refused.
fn append_text(stack: &mut [Frame], text: &str, offset: usize) -> Result<(), XmlError> {
    let blank = xml_trim(text).is_empty();
    match stack.last_mut() {
        Some(Frame::Child {
            text: buf,
            rows: None,
            ..
        })
        | Some(Frame::RowField { text: buf, .. }) => {
            buf.push_str(text);
            Ok(())
        }
        Some(Frame::Ignored)
        | Some(Frame::Child { rows: Some(_), .. })
        | Some(Frame::Row { .. }) => Ok(()),
        _ if blank => Ok(()),
        _ => Err(XmlError::Trailing { offset }),
    }
}

/// Appends `text` with `&`, `<` and `>` escaped.
fn push_escaped(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(i) = rest.find(['&', '<', '>']) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let mut chars = tail.chars();
        match chars.next() {
            Some('&') => out.push_str("&amp;"),
            Some('<') => out.push_str("&lt;"),
            Some('>') => out.push_str("&gt;"),
            Some(c) => out.push(c),
            None => {}
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
}

fn push_field(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_escaped(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// Writes the canonical response body (§1.1) and encodes it in `cs`:
/// `<?xml version="1.0" encoding="GBK"?><Result>` (or `UTF-8`), `<Name>value</Name>` per
/// field in order, then, when `list` is `Some`, `<List>` + `<Row>`…`</Row>` per row +
/// `</List>` (an empty list is `<List></List>`), then `</Result>`. No whitespace is added;
/// only `&`, `<`, `>` are escaped; characters `cs` cannot represent are an error.
pub fn encode_body(
    cs: Charset,
    fields: &[(&str, &str)],
    list: Option<&[Vec<(&str, String)>]>,
) -> Result<Vec<u8>, CharsetError> {
    let mut cap = 64usize;
    for (n, v) in fields {
        cap = cap.saturating_add(
            n.len()
                .saturating_mul(2)
                .saturating_add(v.len())
                .saturating_add(5),
        );
    }
    if let Some(rows) = list {
        cap = cap.saturating_add(13);
        for row in rows {
            cap = cap.saturating_add(11);
            for (n, v) in row {
                cap = cap.saturating_add(
                    n.len()
                        .saturating_mul(2)
                        .saturating_add(v.len())
                        .saturating_add(5),
                );
            }
        }
    }
    let mut out = String::with_capacity(cap);
    out.push_str("<?xml version=\"1.0\" encoding=\"");
    out.push_str(cs.xml_name());
    out.push_str("\"?><Result>");
    for (name, value) in fields {
        push_field(&mut out, name, value);
    }
    if let Some(rows) = list {
        out.push_str("<List>");
        for row in rows {
            out.push_str("<Row>");
            for (name, value) in row {
                push_field(&mut out, name, value);
            }
            out.push_str("</Row>");
        }
        out.push_str("</List>");
    }
    out.push_str("</Result>");
    match charset::encode(&out, cs)? {
        std::borrow::Cow::Borrowed(_) => Ok(out.into_bytes()),
        std::borrow::Cow::Owned(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<XmlBody, XmlError> {
        parse_body(s, Charset::Gbk, &XmlLimits::default())
    }

    #[test]
    fn flat_fields_and_lists() {
        let b = parse(
            "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<Result>\n  <A> x &amp; y </A>\n  <B/>\n  <C></C>\n  <D>&#x5F20;&#19977;</D>\n  <List>\n    <Row><X>1</X><Y>a&lt;b</Y></Row>\n    <Row><X>2</X></Row>\n    <Other>skip</Other>\n  </List>\n  <!-- c -->\n</Result>\n",
        )
        .unwrap();
        assert_eq!(
            b.fields,
            vec![
                ("A".into(), "x & y".into()),
                ("B".into(), String::new()),
                ("C".into(), String::new()),
                ("D".into(), "张三".into())
            ]
        );
        assert_eq!(b.lists.len(), 1);
        assert_eq!(b.lists[0].0, "List");
        assert_eq!(
            b.lists[0].1,
            vec![
                vec![
                    ("X".to_string(), "1".to_string()),
                    ("Y".to_string(), "a<b".to_string())
                ],
                vec![("X".to_string(), "2".to_string())]
            ]
        );
    }

    #[test]
    fn declaration_is_optional_and_must_match() {
        assert!(parse("<Result><A>1</A></Result>").is_ok());
        for ok in ["GBK", "gbk", "GB2312"] {
            let doc = format!("<?xml version=\"1.0\" encoding=\"{ok}\"?><Result/>");
            assert!(parse(&doc).is_ok(), "{ok}");
        }
        for ok in ["UTF-8", "utf-8", "UTF8"] {
            let doc = format!("<?xml version=\"1.0\" encoding=\"{ok}\"?><Result/>");
            assert!(
                parse_body(&doc, Charset::Utf8, &XmlLimits::default()).is_ok(),
                "{ok}"
            );
        }
        assert_eq!(
            parse("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Result/>"),
            Err(XmlError::CharsetMismatch {
                declared: Charset::Gbk
            })
        );
        assert!(matches!(
            parse_body(
                "<?xml version=\"1.0\" encoding=\"GBK\"?><Result/>",
                Charset::Utf8,
                &XmlLimits::default()
            ),
            Err(XmlError::CharsetMismatch { .. })
        ));
        assert!(parse("<?xml version=\"1.0\"?><Result/>").is_ok());
        assert!(matches!(
            parse("<Result/><?xml version=\"1.0\"?>"),
            Err(XmlError::Declaration { .. })
        ));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            parse(
                "<?xml version=\"1.0\"?><!DOCTYPE Result [<!ENTITY x \"y\">]><Result>&x;</Result>"
            ),
            Err(XmlError::Doctype { .. })
        ));
        assert!(parse("<!ENTITY x \"y\"><Result/>").is_err());
        assert!(matches!(
            parse("<Result><A>&x;</A></Result>"),
            Err(XmlError::Entity { .. })
        ));
        assert!(matches!(
            parse("<Result><A>&#0;</A></Result>"),
            Err(XmlError::Entity { .. })
        ));
        assert!(matches!(parse("<Other/>"), Err(XmlError::Root { .. })));
        assert_eq!(parse(""), Err(XmlError::Empty));
        assert_eq!(parse("  \n "), Err(XmlError::Empty));
        assert!(matches!(
            parse("<Result></Result>x"),
            Err(XmlError::Trailing { .. })
        ));
        assert!(matches!(
            parse("<Result></Result><Result/>"),
            Err(XmlError::Trailing { .. })
        ));
        assert!(matches!(
            parse("<Result><A>1</B></Result>"),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<Result><A>1</A>"),
            Err(XmlError::Syntax { .. })
        ));
        assert!(matches!(
            parse("<Result>text</Result>"),
            Err(XmlError::Trailing { .. })
        ));
        assert!(parse("<result/>").is_err());
        // CDATA and comments inside a field; CRLF after the declaration; trailing blanks.
        let b = parse("<?xml version=\"1.0\" encoding=\"GBK\"?>\r\n<Result><A><![CDATA[a<b]]></A><B>1<!--c-->2</B></Result>\r\n").unwrap();
        assert_eq!(
            b.fields,
            vec![
                ("A".to_string(), "a<b".to_string()),
                ("B".to_string(), "12".to_string())
            ]
        );
        assert!(matches!(
            parse("<Result><A>a & b</A></Result>"),
            Err(XmlError::Entity { .. })
        ));
        assert!(matches!(
            parse("<Result><A>&#x110000;</A></Result>"),
            Err(XmlError::Entity { .. })
        ));
        // Ideographic space is content, not XML white space.
        let b = parse("<Result><N>\u{3000}张三 </N></Result>").unwrap();
        assert_eq!(b.fields[0].1, "\u{3000}张三");
    }

    #[test]
    fn limits() {
        let limits = XmlLimits::default();
        let deep = |n: usize| {
            let mut s = String::from("<Result>");
            for _ in 1..n {
                s.push_str("<a>");
            }
            for _ in 1..n {
                s.push_str("</a>");
            }
            s.push_str("</Result>");
            s
        };
        assert!(parse_body(&deep(8), Charset::Gbk, &limits).is_ok());
        assert!(matches!(
            parse_body(&deep(9), Charset::Gbk, &limits),
            Err(XmlError::TooDeep { max: 8, .. })
        ));
        let many = |n: usize| format!("<Result>{}</Result>", "<A/>".repeat(n - 1));
        assert!(parse_body(&many(4096), Charset::Gbk, &limits).is_ok());
        assert!(matches!(
            parse_body(&many(4097), Charset::Gbk, &limits),
            Err(XmlError::TooManyElements { max: 4096, .. })
        ));
    }

    #[test]
    fn errors_carry_no_text_content() {
        let e = parse("<Result><Acct>6222&bogus;0001</Acct></Result>").unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains("6222") && !shown.contains("bogus"),
            "{shown}"
        );
    }

    #[test]
    fn encode_canonical_form() {
        let rows = vec![vec![("X", "1".to_string()), ("Y", "a&b".to_string())]];
        let out = encode_body(Charset::Utf8, &[("A", "<张三>"), ("B", "")], Some(&rows)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Result><A>&lt;张三&gt;</A><B></B><List><Row><X>1</X><Y>a&amp;b</Y></Row></List></Result>"
        );
        let empty = encode_body(Charset::Gbk, &[], Some(&[])).unwrap();
        assert_eq!(
            empty,
            b"<?xml version=\"1.0\" encoding=\"GBK\"?><Result><List></List></Result>".to_vec()
        );
        let gbk = encode_body(Charset::Gbk, &[("N", "张三")], None).unwrap();
        assert!(gbk.windows(4).any(|w| w == [0xD5, 0xC5, 0xC8, 0xFD]));
        assert!(encode_body(Charset::Gbk, &[("N", "😀")], None).is_err());
        // What we write, we read back.
        let text = charset::decode(&gbk, Charset::Gbk).unwrap();
        let back = parse(&text).unwrap();
        assert_eq!(back.fields, vec![("N".to_string(), "张三".to_string())]);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse_body(&s, Charset::Utf8, &XmlLimits::default());
        }

        #[test]
        fn xmlish_text_never_panics(s in "[<>/!?&;#x0-9a-zA-Z =\"'\\[\\]-]{0,200}") {
            let _ = parse_body(&s, Charset::Gbk, &XmlLimits { depth_max: 3, elements_max: 10 });
            let doc = format!("<Result>{s}</Result>");
            let _ = parse_body(&doc, Charset::Gbk, &XmlLimits::default());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for cs in [Charset::Gbk, Charset::Utf8] {
                if let Ok(text) = charset::decode(&bytes, cs) {
                    let _ = parse_body(&text, cs, &XmlLimits::default());
                }
            }
        }

        #[test]
        fn encode_then_parse_round_trip(values in proptest::collection::vec("[a-z0-9&<> 张三]{0,20}", 0..8)) {
            let names: Vec<String> = (0..values.len()).map(|i| format!("F{i}")).collect();
            let fields: Vec<(&str, &str)> = names.iter().map(String::as_str).zip(values.iter().map(String::as_str)).collect();
            let bytes = encode_body(Charset::Gbk, &fields, None).unwrap();
            let text = charset::decode(&bytes, Charset::Gbk).unwrap();
            let body = parse(&text).unwrap();
            let expect: Vec<(String, String)> = fields.iter().map(|(n, v)| ((*n).to_string(), v.trim().to_string())).collect();
            prop_assert_eq!(body.fields, expect);
        }
    }
}

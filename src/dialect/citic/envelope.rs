//! The CITIC envelope (docs/citic.md "Envelope"): a GBK XML `<stream>` document in, a GBK
//! XML `<stream>` reply out. Bounded like the A001 body: nesting depth and element count
//! are capped, DTDs and unknown entities are refused, and nothing here panics on any input.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::codec::xml::{XmlBody, XmlLimits, XmlRow};

/// A decoded request: the envelope fields and the action's own fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `<action>`, empty when absent.
    pub action: String,
    /// `<userName>`, empty when absent.
    pub user_name: String,
    /// Every text child of `<stream>` (envelope fields included), in document order, and
    /// the `<list>` elements by their `name` attribute with their `<row>`s.
    pub body: XmlBody,
}

/// Why a body is not a CITIC request (→ `DLF9977`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Bytes that are not GBK.
    #[error("body is not GBK")]
    Charset,
    /// Not well-formed, a DTD, an unknown entity, a limit passed, a declaration naming an
    /// encoding other than GBK, GB2312 or GB18030, or a root other than `<stream>`.
    #[error("malformed XML: {0}")]
    Xml(&'static str),
}

enum Frame {
    Root,
    Child {
        name: String,
        text: String,
        rows: Option<Vec<XmlRow>>,
        list_name: String,
    },
    Row(Vec<(String, String)>),
    RowField {
        name: String,
        text: String,
    },
    Ignored,
}

fn name_of(e: &BytesStart<'_>) -> Result<String, EnvelopeError> {
    std::str::from_utf8(e.name().as_ref())
        .map(str::to_owned)
        .map_err(|_| EnvelopeError::Xml("element name"))
}

fn list_name(e: &BytesStart<'_>) -> String {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == b"name")
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
        .unwrap_or_default()
}

/// Decodes a request body: strict GBK, then the `<stream>` document. Texts are unescaped
/// and trimmed of XML white space; `<a/>` and `<a></a>` give an empty string.
pub fn decode(bytes: &[u8], limits: &XmlLimits) -> Result<Request, EnvelopeError> {
    let (text, had_errors) = encoding_rs::GBK.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(EnvelopeError::Charset);
    }
    let mut reader = Reader::from_str(&text);
    let cfg = reader.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;
    let mut stack: Vec<Frame> = Vec::new();
    let mut body = XmlBody::default();
    let mut elements = 0usize;
    let mut root_seen = false;
    let mut root_done = false;
    loop {
        let start = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|_| EnvelopeError::Xml("not well-formed"))?;
        let (e, empty) = match ev {
            Event::Eof => break,
            Event::Decl(d) => {
                if start != 0 {
                    return Err(EnvelopeError::Xml("declaration not at byte 0"));
                }
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|_| EnvelopeError::Xml("declaration"))?;
                    let ok = ["GBK", "GB2312", "GB18030"]
                        .iter()
                        .any(|n| enc.eq_ignore_ascii_case(n.as_bytes()));
                    if !ok {
                        return Err(EnvelopeError::Xml("encoding not GBK"));
                    }
                }
                continue;
            }
            Event::DocType(_) => return Err(EnvelopeError::Xml("DTD")),
            Event::Comment(_) | Event::PI(_) => continue,
            Event::Text(t) => {
                let s = t.unescape().map_err(|_| EnvelopeError::Xml("entity"))?;
                push_text(&mut stack, &s)?;
                continue;
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(c.as_ref()).map_err(|_| EnvelopeError::Xml("cdata"))?;
                push_text(&mut stack, s)?;
                continue;
            }
            Event::End(_) => {
                let frame = stack.pop().ok_or(EnvelopeError::Xml("unbalanced"))?;
                close(&mut stack, frame, &mut body);
                if stack.is_empty() {
                    root_done = true;
                }
                continue;
            }
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
        };
        if root_done {
            return Err(EnvelopeError::Xml("content after the root"));
        }
        elements = elements.saturating_add(1);
        if elements > limits.elements_max {
            return Err(EnvelopeError::Xml("too many elements"));
        }
        if stack.len() >= limits.depth_max {
            return Err(EnvelopeError::Xml("too deep"));
        }
        let name = name_of(&e)?;
        let frame = match stack.last_mut() {
            None => {
                if name != "stream" || root_seen {
                    return Err(EnvelopeError::Xml("root is not stream"));
                }
                root_seen = true;
                Frame::Root
            }
            Some(Frame::Root) => Frame::Child {
                list_name: if name == "list" {
                    list_name(&e)
                } else {
                    String::new()
                },
                name,
                text: String::new(),
                rows: None,
            },
            Some(Frame::Child { rows, text, .. }) => {
                if !text.trim().is_empty() {
                    return Err(EnvelopeError::Xml("mixed content"));
                }
                let rows = rows.get_or_insert_with(Vec::new);
                if name == "row" {
                    Frame::Row(Vec::new())
                } else {
                    let _ = rows;
                    Frame::Ignored
                }
            }
            Some(Frame::Row(_)) => Frame::RowField {
                name,
                text: String::new(),
            },
            Some(Frame::RowField { .. }) | Some(Frame::Ignored) => Frame::Ignored,
        };
        if empty {
            close(&mut stack, frame, &mut body);
            if stack.is_empty() {
                root_done = true;
            }
        } else {
            stack.push(frame);
        }
    }
    if !stack.is_empty() || !root_done {
        return Err(EnvelopeError::Xml("unclosed document"));
    }
    let get = |n: &str| {
        body.fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(Request {
        action: get("action"),
        user_name: get("userName"),
        body,
    })
}

fn push_text(stack: &mut [Frame], s: &str) -> Result<(), EnvelopeError> {
    match stack.last_mut() {
        Some(Frame::Child {
            text, rows: None, ..
        })
        | Some(Frame::RowField { text, .. }) => {
            if text.len().saturating_add(s.len()) > 1 << 20 {
                return Err(EnvelopeError::Xml("text too long"));
            }
            text.push_str(s);
            Ok(())
        }
        None if !s.trim().is_empty() => Err(EnvelopeError::Xml("text outside the root")),
        Some(Frame::Root) | Some(Frame::Row(_)) | Some(Frame::Child { .. })
            if !s.trim().is_empty() =>
        {
            Err(EnvelopeError::Xml("mixed content"))
        }
        _ => Ok(()),
    }
}

const WS: &[char] = &[' ', '\t', '\r', '\n'];

fn close(stack: &mut [Frame], frame: Frame, body: &mut XmlBody) {
    match frame {
        Frame::Child {
            name,
            text,
            rows: None,
            ..
        } => body.fields.push((name, text.trim_matches(WS).to_string())),
        Frame::Child {
            name,
            rows: Some(rows),
            list_name,
            ..
        } => {
            let key = if name == "list" { list_name } else { name };
            body.lists.push((key, rows))
        }
        Frame::Row(fields) => {
            if let Some(Frame::Child {
                rows: Some(rows), ..
            }) = stack.last_mut()
            {
                rows.push(fields);
            }
        }
        Frame::RowField { name, text } => {
            if let Some(Frame::Row(fields)) = stack.last_mut() {
                fields.push((name, text.trim_matches(WS).to_string()));
            }
        }
        Frame::Root | Frame::Ignored => {}
    }
}

/// The XML declaration every reply starts with, at byte 0.
pub const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"GBK\"?>";

/// Longest `<statusText>`, GBK bytes.
pub const STATUS_TEXT_MAX: usize = 254;

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

fn element(out: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        out.push('<');
        out.push_str(name);
        out.push_str("/>");
    } else {
        out.push('<');
        out.push_str(name);
        out.push('>');
        escape_into(out, value);
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
}

/// Encodes a reply: the declaration at byte 0, `<stream>`, the top-level `fields` in ASCII
/// order of their names, then (when `rows` is `Some` and not empty) one
/// `<list name="userDataList">` of `<row>`s whose children are in ASCII order unless
/// `keep_row_order`. `statusText` is cut to 254 GBK bytes. Characters GBK cannot carry are
/// written as numeric character references. No white space between elements.
pub fn encode(
    fields: &[(&str, String)],
    rows: Option<&[Vec<(&str, String)>]>,
    keep_row_order: bool,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str(DECLARATION);
    out.push_str("<stream>");
    let mut top: Vec<&(&str, String)> = fields.iter().collect();
    top.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (k, v) in top {
        if *k == "statusText" {
            let cut = crate::codec::charset::gbk_prefix(v, STATUS_TEXT_MAX);
            element(&mut out, k, cut);
        } else {
            element(&mut out, k, v);
        }
    }
    if let Some(rows) = rows.filter(|r| !r.is_empty()) {
        out.push_str("<list name=\"userDataList\">");
        for row in rows {
            out.push_str("<row>");
            let mut r: Vec<&(&str, String)> = row.iter().collect();
            if !keep_row_order {
                r.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            }
            for (k, v) in r {
                element(&mut out, k, v);
            }
            out.push_str("</row>");
        }
        out.push_str("</list>");
    }
    out.push_str("</stream>");
    let (bytes, _, _) = encoding_rs::GBK.encode(&out);
    bytes.into_owned()
}

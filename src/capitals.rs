//! Amounts as people read them on a receipt: in figures with thousands separators
//! (`1,234.50`) and in Chinese capital numerals (大写金额, `壹仟贰佰叁拾肆元伍角整`).
//!
//! The capitals follow the People's Bank of China rules for writing amounts on bills
//! (《支付结算办法》附件《正确填写票据和结算凭证的基本规定》), as docs/protocol.md §6 cites:
//!
//! - digits `零壹贰叁肆伍陆柒捌玖`, units `拾佰仟`, groups `万亿`, then `元角分`;
//! - `壹拾` is written in full (`10.00` → `壹拾元整`, `100,000.00` → `壹拾万元整`);
//! - one `零` stands for any run of zeros between two non-zero digits, across the `万` and
//!   `亿` groups too (`1,000,001.00` → `壹佰万零壹元整`; `100,010,000.00` →
//!   `壹亿零壹万元整`), except zeros that end a `万` or `亿` group when the next group's
//!   thousands digit is not zero (`107,000.53` → `壹拾万柒仟元伍角叁分`), and a zero 元
//!   digit before a non-zero 角 (`1,680.32` → `壹仟陆佰捌拾元叁角贰分`): the rules allow
//!   either form there;
//! - a zero 角 between 元 and a non-zero 分 is written `零` (`325.04` → `叁佰贰拾伍元零肆分`);
//! - `整` follows an amount ending at 元 or 角; never after 分;
//! - zero is `零元整`; amounts below one yuan start at 角 or 分 (`0.05` → `伍分`).
//!
//! Amounts are integer fen from 0 to [`MAX_FEN`] (999,999,999,999.99); anything else is
//! `None`, never a panic.

/// The largest amount written, fen: 999,999,999,999.99 CNY (9,999 亿).
pub const MAX_FEN: i64 = 99_999_999_999_999;

const DIGITS: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
const UNITS: [&str; 4] = ["", "拾", "佰", "仟"];
const GROUPS: [&str; 3] = ["亿", "万", ""];

/// `fen` in figures with a thousands separator and two decimals: `123450` → `1,234.50`,
/// `-5` → `-0.05`. Works for every `i64`.
pub fn figures(fen: i64) -> String {
    let abs = fen.unsigned_abs();
    let (yuan, cents) = (abs / 100, abs % 100);
    let digits = yuan.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    if fen < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(&format!(".{cents:02}"));
    out
}

/// `fen` in Chinese capital numerals by the rules of this module's docs: `123450` →
/// `壹仟贰佰叁拾肆元伍角整`, `1000` → `壹拾元整`. `None` when `fen` is negative or above
/// [`MAX_FEN`].
pub fn capitals(fen: i64) -> Option<String> {
    if !(0..=MAX_FEN).contains(&fen) {
        return None;
    }
    let yuan = fen / 100;
    let jiao = usize::try_from((fen / 10) % 10).ok()?;
    let fen_digit = usize::try_from(fen % 10).ok()?;
    let mut out = String::new();
    if yuan > 0 {
        // Groups of four digits: 亿, 万, units. `zero` = a zero seen since the last digit
        // written, to be written as one 零 before the next non-zero digit.
        let groups = [yuan / 100_000_000, (yuan / 10_000) % 10_000, yuan % 10_000];
        let mut zero = false;
        for (g, unit) in groups.into_iter().zip(GROUPS) {
            if g == 0 {
                zero |= !out.is_empty();
                continue;
            }
            for pos in (0..4).rev() {
                let d = usize::try_from((g / 10_i64.pow(pos)) % 10).ok()?;
                if d == 0 {
                    zero |= !out.is_empty();
                    continue;
                }
                if zero {
                    out.push('零');
                    zero = false;
                }
                out.push(DIGITS[d]);
                out.push_str(UNITS[pos as usize]);
            }
            out.push_str(unit);
            // Zeros ending a group are not read: `壹拾万柒仟`, not `壹拾万零柒仟`.
            zero = false;
        }
        out.push('元');
    }
    match (jiao, fen_digit) {
        (0, 0) if yuan == 0 => out.push_str("零元整"),
        (0, 0) => out.push('整'),
        (0, f) => {
            if yuan > 0 {
                out.push('零');
            }
            out.push(DIGITS[f]);
            out.push('分');
        }
        (j, 0) => {
            out.push(DIGITS[j]);
            out.push_str("角整");
        }
        (j, f) => {
            out.push(DIGITS[j]);
            out.push('角');
            out.push(DIGITS[f]);
            out.push('分');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads capitals back into fen (an independent parser, for the round-trip property).
    fn parse(s: &str) -> Option<i64> {
        let mut total: i64 = 0; // completed 亿 and 万 groups, in yuan
        let mut group: i64 = 0; // the current group below 万
        let mut digit: i64 = 0;
        let mut fen: i64 = 0;
        let mut after_yuan = false;
        for c in s.chars() {
            if let Some(d) = DIGITS.iter().position(|x| *x == c) {
                digit = d as i64;
                continue;
            }
            match c {
                '拾' => group += digit * 10,
                '佰' => group += digit * 100,
                '仟' => group += digit * 1000,
                '万' => total += (group + digit) * 10_000,
                '亿' => total = (total + group + digit) * 100_000_000,
                '元' => {
                    total += group + digit;
                    after_yuan = true;
                }
                '角' => fen += digit * 10,
                '分' => fen += digit,
                '整' => {}
                _ => return None,
            }
            if matches!(c, '万' | '亿' | '元') {
                group = 0;
            }
            digit = 0;
        }
        let _ = after_yuan;
        Some(total * 100 + fen)
    }

    #[test]
    fn pboc_examples() {
        let cases: &[(i64, &str)] = &[
            (0, "零元整"),
            (5, "伍分"),
            (50, "伍角整"),
            (55, "伍角伍分"),
            (100, "壹元整"),
            (1_000, "壹拾元整"),
            (1_500, "壹拾伍元整"),
            (123_450, "壹仟贰佰叁拾肆元伍角整"),
            (168_032, "壹仟陆佰捌拾元叁角贰分"),
            (10_700_053, "壹拾万柒仟元伍角叁分"),
            (1_640_902, "壹万陆仟肆佰零玖元零贰分"),
            (32_504, "叁佰贰拾伍元零肆分"),
            (10_000_000, "壹拾万元整"),
            (100_000_100, "壹佰万零壹元整"),
            (10_001_000_000, "壹亿零壹万元整"),
            (10_000_000_000, "壹亿元整"),
            (1_000_100, "壹万零壹元整"),
            (10_000_100_000, "壹亿零壹仟元整"),
            (10_100_000_000, "壹亿零壹佰万元整"),
            (11_000_000_000, "壹亿壹仟万元整"),
            (101_000, "壹仟零壹拾元整"),
            (100_100, "壹仟零壹元整"),
            (
                MAX_FEN,
                "玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分",
            ),
        ];
        for (fen, want) in cases {
            assert_eq!(capitals(*fen).as_deref(), Some(*want), "{fen} fen");
        }
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(capitals(-1), None);
        assert_eq!(capitals(MAX_FEN + 1), None);
        assert_eq!(capitals(i64::MIN), None);
    }

    #[test]
    fn figures_group_thousands() {
        assert_eq!(figures(0), "0.00");
        assert_eq!(figures(5), "0.05");
        assert_eq!(figures(123_450), "1,234.50");
        assert_eq!(figures(100_000_000), "1,000,000.00");
        assert_eq!(figures(-123_450), "-1,234.50");
        assert_eq!(figures(MAX_FEN), "999,999,999,999.99");
        assert_eq!(figures(i64::MIN), "-92,233,720,368,547,758.08");
    }

    proptest! {
        #[test]
        fn capitals_read_back_and_obey_the_zero_rules(fen in 0..=MAX_FEN) {
            let s = capitals(fen).expect("in range");
            prop_assert_eq!(parse(&s), Some(fen), "{}", s);
            prop_assert!(!s.contains("零零"), "{}", s);
            prop_assert!(!s.starts_with('零') || s == "零元整", "{}", s);
            prop_assert!(!s.contains("零元") || s == "零元整", "{}", s);
            prop_assert_eq!(s.ends_with('整'), fen % 10 == 0, "{}", s);
            prop_assert_eq!(s.ends_with('分'), fen % 10 != 0, "{}", s);
            if fen >= 100 { prop_assert!(s.contains('元'), "{}", s); }
        }

        #[test]
        fn small_amounts_read_back(fen in 0i64..2_000_000) {
            let s = capitals(fen).expect("in range");
            prop_assert_eq!(parse(&s), Some(fen), "{}", s);
        }
    }
}

"""Masking of personal data in free text before it is stored (the query log, feedback comments).

Callers read out phone numbers, ID-card numbers, bank cards and account numbers (户号) while the
agent types; none of those may reach the log. Each kind is replaced by a bracketed label so the
report can still say "a question with a phone number in it". The patterns run from the most
specific to a catch-all: any run of seven or more digits (spaces and dashes allowed between
them) is masked whatever it is, so a number the specific patterns miss is still not stored."""

import re

FULL_WIDTH = str.maketrans("０１２３４５６７８９ｘＸ－　＋＠．", "0123456789xX- +@.")

# A number's edges: not glued to other digits or latin letters (order numbers, model codes).
_START = r"(?<![0-9A-Za-z])"
_END = r"(?![0-9A-Za-z])"
_SEP = r"[ \-._]?"  # 138-1234-5678, 138 1234 5678, 138.1234.5678, 138_1234_5678

# Digits read out after a label are an account whatever their length.
ACCOUNT_LABEL = re.compile(
    r"(户号|用户编号|用户号|客户编号|客户号|缴费号|电费户号|户口号|账号|帐号)"
    r"(\s*(?:是|为|：|:)?\s*)[0-9][0-9 \-]{3,}[0-9]"
)

PATTERNS: list[tuple[str, re.Pattern]] = [
    ("[邮箱]", re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")),
    # 18-digit resident ID: area, birth date, sequence, check digit (may be X).
    ("[身份证号]", re.compile(
        _START + r"[1-9]\d{5}" + _SEP + r"(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])"
        r"(?:0[1-9]|[12]\d|3[01])" + _SEP + r"\d{3}[0-9Xx]" + _END)),
    ("[手机号]", re.compile(
        _START + r"(?:\+?86" + _SEP + r")?1[3-9]\d" + _SEP + r"\d{4}" + _SEP + r"\d{4}" + _END)),
    ("[银行卡号]", re.compile(
        _START + r"\d{4}(?:" + _SEP + r"\d{4}){3}(?:" + _SEP + r"\d{1,3})?" + _END)),
    ("[电话]", re.compile(
        _START + r"(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3})" + _SEP
        + r"(?:\d{7,8}|\d{3,4}" + _SEP + r"\d{4})" + _END)),
    ("[户号]", re.compile(_START + r"\d{10,13}" + _END)),
    # The catch-all ignores letters: A1234567890 is masked too.
    ("[号码]", re.compile(r"(?<!\d)\d(?:" + _SEP + r"\d){6,}[Xx]?(?!\d)")),
]
_DATE = re.compile(r"(?:19|20)\d{2}-\d{1,2}-\d{1,2}")


def mask(text: str) -> str:
    """`text` with personal numbers and e-mail addresses replaced by labels such as [手机号]."""
    if not text:
        return text
    text = text.translate(FULL_WIDTH)
    text = ACCOUNT_LABEL.sub(lambda m: f"{m.group(1)}{m.group(2)}[户号]", text)
    for label, pattern in PATTERNS:
        text = pattern.sub(lambda m, label=label: _keep_dates(m.group(0), label), text)
    return text


def _keep_dates(found: str, label: str) -> str:
    # 2025-03-01 is seven digits with dashes, and a date tells nothing about the caller.
    return found if _DATE.fullmatch(found) else label

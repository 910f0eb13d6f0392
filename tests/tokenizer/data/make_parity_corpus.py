#!/usr/bin/env python3
"""Builds parity.jsonl: the lines on which our Qwen tokenizer must give the same ids as the
JavaScript reference (tests/tokenizer/js/encode.js). One JSON string per line.

Real text comes from Debian's fortune packages (fortunes: English, fortunes-zh: modern and
classical Chinese); the rest are hand-written edge cases and seeded random mixtures of tricky
fragments. The output is deterministic for a given set of installed fortune files.

    python3 tests/tokenizer/data/make_parity_corpus.py > tests/tokenizer/data/parity.jsonl

Characters assigned after Unicode 15.0 are avoided: our ICU (72) and Node's ICU may classify
them differently, which would be a difference of Unicode tables, not of the tokenizer.
"""
import json
import os
import random
import sys

FORTUNES = "/usr/share/games/fortunes"
ENGLISH = ["fortunes", "computers", "science", "literature", "linux", "perl", "people", "wisdom",
           "work", "songs-poems", "definitions", "art", "startrek", "zippy", "law", "kids"]
CHINESE = ["chinese", "tang300", "song100"]


def read_fortunes(name):
    path = os.path.join(FORTUNES, name)
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return [e.strip("\n") for e in text.split("\n%\n") if e.strip()]


def pick(entries, n, rng):
    if len(entries) <= n:
        return list(entries)
    return rng.sample(entries, n)


ADDED_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
                "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
                "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                "<tool_response>", "</tool_response>", "<think>", "</think>"]

HANDWRITTEN = [
    # Japanese, Korean, mixed scripts
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "東京都渋谷区で「カタカナ」とひらがなを混ぜて書きます。ｶﾀｶﾅ（半角）もあります。",
    "日本語の文章には、句読点（、。）や全角スペース　が含まれることがあります。",
    "대한민국의 수도는 서울입니다. 한국어 문장을 토큰화합니다!",
    "안녕하세요, 세계! 오늘 날씨가 정말 좋네요 :)",
    "Русский текст: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "עברית: דג סקרן שט בים מאוכזב ולפתע מצא חברה.",
    "العربية: نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق.",
    "हिन्दी: ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले।",
    "ไทย: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า",
    "Tiếng Việt: Tôi có thể ăn thủy tinh mà không hại gì.",
    "Mixed: English中文日本語한국어Русский العربية עברית123abc",
    "Emoji in text: I ❤️ Unicode 😀😃😄 and 👍🏽 and 👨‍👩‍👧‍👦 family and 🇺🇸🇯🇵🇨🇳 flags",
    "👩🏿‍💻👨🏻‍🚀🧑🏽‍🔬 ZWJ sequences with skin tones",
    "🏳️‍🌈 🏴‍☠️ 🏴󠁧󠁢󠁳󠁣󠁴󠁿 tag sequences",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣ and variation selectors ☺︎ ☺️",
    # contractions
    "I'm, you're, he's, she'll, we've, they'd, it's, can't, won't",
    "I'M, YOU'RE, HE'S, SHE'LL, WE'VE, THEY'D, IT'S, CAN'T, WON'T",
    "I'm I'M i'M i'm 'Ll 'lL 'LL 're 'rE 'Re 'RE 've 'vE 'Ve 'VE",
    "'s's's 's 'S 'd'D 't'T 'm'M 'x 'sa 'Sam ''s '''",
    "Rock 'n' roll, rock ’n’ roll (curly), O'Brien's dog's bone",
    # numbers
    "0123456789 3.14159265358979323846 -42 +7 1e-10 0xDEADBEEF 1,000,000 ١٢٣ ४५६",
    "Phone: +1 (555) 123-4567, ISBN 978-3-16-148410-0, 2024-01-31T23:59:59Z",
    "Long: 123456789012345678901234567890123456789012345678901234567890",
    "Fractions ½ ⅓ ¾, superscripts x² y³, subscripts H₂O, Roman Ⅻ ⅷ, circled ① ②",
    # whitespace
    "trailing spaces   ",
    "   leading spaces",
    "tabs\tbetween\t\twords\t",
    "windows\r\nline\r\nendings\r\n",
    "mixed \r\n \n\r \t\n   \n\n\n",
    "\n\n\nstarts with newlines",
    " ",
    "\t",
    "\n",
    "\r\n",
    "  \n  ",
    "a \n b",
    "a  \n\n  b",
    "x\u3000y\u00a0z\u2009w\u200az\u202fq\u205fr\u1680s",
    "line\u2028separator\u2029paragraph",
    "NEL\u0085here and BOM\ufeffthere \ufeff\ufeff",
    "vertical\u000btab and form\u000cfeed",
    # odd unicode
    "zero\u200bwidth\u200bspace and zw\u200cnj and zw\u200dj",
    "RTL \u202eoverride\u202c and \u200fmark\u200e and \u2066isolate\u2069",
    "control chars \u0001\u0002\u0007\u001b[31mred\u001b[0m\u007f end",
    "null\u0000byte inside",
    "private use \ue000\uf8ff and specials \ufffc\ufffd",
    "Math: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 ∀x∈ℝ: x²≥0 ∑ ∫ ≠ ≤ ≥",
    "CJK Ext B: 𠀀𠀁𠀂 and compatibility 豈 更",
    "Titlecase ǅǈǋ, modifier ʰʲˠ, dotless ı and İstanbul, ß ẞ, ﬁ ligature",
    "Box drawing ┌─┐│└┘ and braille ⠁⠃⠉ and arrows ←↑→↓",
    # non-NFC input
    "e\u0301 vs \u00e9, A\u030a vs \u00c5, n\u0303 vs \u00f1",
    "o\u0308\u0304 and o\u0304\u0308 (order), a\u0323\u0302 vs a\u0302\u0323",
    "\u1100\u1161\u11a8 Hangul jamo compose to 각",
    "Vietnamese decomposed: Vie\u0302\u0323t Nam, tie\u0302\u0301ng",
    "Angstrom \u212b and Ohm \u2126 and Kelvin \u212a singletons",
    "combining on space: \u0301 and on digit 1\u0301 and alone \u0300\u0301\u0302",
    "Zalgo: Z\u0351\u036b\u0343a\u0352\u0364l\u0346g\u0344\u0307o",
    # code
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
    "#include <stdio.h>\nint main(void) {\n    printf(\"hello, world\\n\");\n    return 0;\n}\n",
    "for (int i = 0; i < n; ++i) { a[i] += b[i] * c; }  // fused",
    "const add = (a, b) => a + b;\nconsole.log(`sum=${add(1, 2)}`);\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "#!/bin/sh\nset -eu\nfor f in *.txt; do\n  wc -l \"$f\"\ndone\n",
    "<html>\n  <body>\n    <p class=\"x\">Hello &amp; goodbye</p>\n  </body>\n</html>\n",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "    \n        deeply\n            indented\n                code\n",
    "x=1;y=2;;;;;;;;z=3!!!???...---___***",
    "https://example.com/path?query=1&b=2#frag user@example.org",
    "C:\\Windows\\System32\\drivers\\etc\\hosts",
    "$$\\frac{a}{b} + \\sqrt{x^2 + y^2}$$",
    # added tokens in context
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
    "text<|endoftext|>more text<|endoftext|><|endoftext|>",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>",
    "partial <|im_start and <|im_end| and im_end|> and <|endoftext",
    "nested <|<|im_start|>|> and <<|endoftext|>> and <think></think>",
    "  <|im_start|>  spaces around  <|im_end|>  ",
    "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>",
    "",
]


def added_token_lines():
    lines = []
    for t in ADDED_TOKENS:
        lines.append(t)
        lines.append("before " + t + " after")
        lines.append("x" + t + "y")
        lines.append(t + t)
        lines.append("\n" + t + "\n")
    return lines


# Fragments for random mixtures: each is small, the interest is in their boundaries.
FRAGMENTS = [
    " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u3000", "\u00a0", "\ufeff",
    "\u0085", "\u2028", "\u200b", "a", "Z", "word", "Word", "WORD", " the", "ing", "é", "e\u0301",
    "中", "文字", "の", "한", "я", "ж", "ß", "1", "42", "2024", "3.14", "½", "²", "Ⅻ", "①",
    "'s", "'S", "'re", "'RE", "'ll", "'LL", "'t", "'d", "'m", "'ve", "'", "\"", "`", ".", ",", "!",
    "?", "...", "—", "–", "-", "_", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "|", "#",
    "@", "$", "%", "^", "&", "*", "+", "=", "~", ";", ":", "😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "\u0301",
    "\u0000", "\u001b", "\u007f", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>",
    "<|", "|>", "im_start", "    ", "\t\t", "def", "return", "0x1F", "::", "->", "=>", "!=",
]


def random_lines(rng, n):
    lines = []
    for _ in range(n):
        k = rng.randint(1, 24)
        lines.append("".join(rng.choice(FRAGMENTS) for _ in range(k)))
    return lines


def mutated(rng, text):
    """A fortune with its spacing disturbed: doubled spaces, CRLF, trailing blanks."""
    ops = [lambda s: s.replace("\n", "\r\n"), lambda s: s.replace(" ", "  "),
           lambda s: s + "   ", lambda s: "\t" + s.replace("\n", "\n\t"), lambda s: s.upper(),
           lambda s: s.replace(". ", ".\n\n")]
    return rng.choice(ops)(text)


def main():
    rng = random.Random(20240611)
    lines = []
    english = []
    for name in ENGLISH:
        english += read_fortunes(name)
    chinese = []
    for name in CHINESE:
        chinese += read_fortunes(name)
    eng = pick(english, 1500, rng)
    lines += eng
    lines += [mutated(rng, s) for s in pick(eng, 300, rng)]
    lines += pick(chinese, 800, rng)
    lines += HANDWRITTEN
    lines += added_token_lines()
    lines += random_lines(rng, 600)
    out = sys.stdout
    for s in lines:
        out.write(json.dumps(s, ensure_ascii=False) + "\n")
    print(f"{len(lines)} lines", file=sys.stderr)


if __name__ == "__main__":
    main()

//! Cutting knowledge-base documents into passages, and turning a customer's message into the
//! words a full-text search looks for.

/// A passage is at most this many characters (a few hundred words: enough to answer from, small
/// enough that three of them and ten messages stay a short prompt).
pub const CHUNK_CHARS: usize = 1200;

/// Cuts `body` into passages of at most [`CHUNK_CHARS`] characters: paragraphs are kept whole
/// and packed together while they fit; a longer paragraph is cut at sentence ends, and a longer
/// sentence at spaces. `title` leads the first passage, so a search for it finds the document.
pub fn chunk(title: &str, body: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    for paragraph in body.split("\n\n") {
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if paragraph.is_empty() {
            continue;
        }
        if paragraph.chars().count() <= CHUNK_CHARS {
            pieces.push(paragraph);
        } else {
            pieces.extend(split_long(&paragraph));
        }
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut current = title.trim().to_owned();
    for piece in pieces {
        let len = current.chars().count();
        if len > 0 && len + 1 + piece.chars().count() > CHUNK_CHARS {
            chunks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&piece);
    }
    if !current.trim().is_empty() {
        chunks.push(current);
    }
    chunks
}

/// A paragraph longer than a passage, cut at sentence ends (else at spaces, else anywhere).
fn split_long(paragraph: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for sentence in sentences(paragraph) {
        for word in sentence.split(' ') {
            let extra = usize::from(!current.is_empty()) + word.chars().count();
            if !current.is_empty() && current.chars().count() + extra > CHUNK_CHARS {
                out.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            // A single "word" longer than a passage (a URL, a hash) is cut where it must be.
            let mut word = word;
            while word.chars().count() > CHUNK_CHARS {
                let cut = word
                    .char_indices()
                    .nth(CHUNK_CHARS)
                    .map_or(word.len(), |(i, _)| i);
                out.push(word[..cut].to_owned());
                word = &word[cut..];
            }
            current.push_str(word);
        }
        // A sentence end is a good place to start the next passage when this one is well filled.
        if current.chars().count() > CHUNK_CHARS * 3 / 4 {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Sentences of a paragraph: cut after `.`, `!` or `?` followed by a space.
fn sentences(paragraph: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = paragraph.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if matches!(b, b'.' | b'!' | b'?') && bytes.get(i + 1) == Some(&b' ') {
            out.push(&paragraph[start..=i]);
            start = i + 2;
        }
    }
    if start < paragraph.len() {
        out.push(&paragraph[start..]);
    }
    out
}

/// Words too common to tell passages apart (English and German, the product's first markets).
const STOPWORDS: &[&str] = &[
    "about", "after", "again", "also", "and", "any", "are", "but", "can", "could", "did", "does",
    "for", "from", "had", "has", "have", "hello", "her", "here", "him", "his", "how", "just",
    "like", "may", "more", "not", "now", "our", "out", "please", "she", "should", "some", "than",
    "thank", "thanks", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "was", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your",
    "auf", "aus", "bei", "bin", "bis", "das", "dass", "dem", "den", "der", "des", "die", "ein",
    "eine", "einen", "einer", "für", "hallo", "hat", "ich", "ihr", "ist", "mit", "nicht", "oder",
    "sie", "sind", "und", "von", "was", "wie", "wir", "zu", "zum", "zur",
];

/// At most this many words go into one search.
pub const MAX_TERMS: usize = 24;

/// The distinct words of `text` worth searching for: letters and digits only (so they are never
/// query syntax in either database), lower case, at least three characters, not a stop word.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() < 3 || STOPWORDS.contains(&word.as_str()) {
            continue;
        }
        if !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_documents_are_one_passage_led_by_the_title() {
        let chunks = chunk(
            "Opening hours",
            "We open at 9.\n\nWe close at 17 on Fridays.",
        );
        assert_eq!(
            chunks,
            vec!["Opening hours\nWe open at 9.\nWe close at 17 on Fridays."]
        );
    }

    #[test]
    fn long_documents_are_cut_within_the_limit_and_lose_no_word() {
        let paragraph = (0..400)
            .map(|i| format!("Sentence number {i} says something."))
            .collect::<Vec<_>>()
            .join(" ");
        let body = format!(
            "{paragraph}\n\nA short closing paragraph.\n\n{}",
            "x".repeat(3000)
        );
        let chunks = chunk("Title", &body);
        assert!(chunks.len() > 5, "{}", chunks.len());
        for c in &chunks {
            assert!(c.chars().count() <= CHUNK_CHARS, "{}", c.chars().count());
        }
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let joined: String = chunks.join(" ");
        let mut expected = words("Title");
        expected.extend(words(&body).into_iter().filter(|w| !w.starts_with('x')));
        let got: Vec<String> = words(&joined)
            .into_iter()
            .filter(|w| !w.starts_with('x'))
            .collect();
        assert_eq!(got, expected);
        let xs: usize = joined.chars().filter(|c| *c == 'x').count();
        assert_eq!(xs, 3000);
        // Passages end at sentence ends where they can.
        assert!(chunks[0].ends_with("something."), "{}", chunks[0]);
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let body = "ä".repeat(CHUNK_CHARS * 2 + 5);
        let chunks = chunk("", &body);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.chars().all(|ch| ch == 'ä')));
    }

    #[test]
    fn query_terms_are_plain_distinct_words() {
        assert_eq!(
            query_terms("Hello! What are your OPENING hours on \"Friday\" -- hours? a OR b*"),
            vec!["opening", "hours", "friday"]
        );
        assert_eq!(
            query_terms("Öffnungszeiten für Straße"),
            vec!["öffnungszeiten", "straße"]
        );
        assert!(query_terms("a b c to of").is_empty());
        let many = (0..100)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(query_terms(&many).len(), MAX_TERMS);
    }
}

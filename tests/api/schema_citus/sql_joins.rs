//! Check 4 of the schema checks: joins in SQL text. A small tokenizer reads each SQL string
//! literal of the source (and each function body of the schema), maps aliases to tables, and
//! reports a join of tenant tables whose condition does not tie their `tenant_id`s together.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// A token of SQL: a word (identifier, keyword, `$1`), a quoted string, or one character.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str,
    Punct(char),
}

/// `sql` as tokens, with the span of each in `chars` (the lowercased text), for quoting clauses.
struct Tokens {
    tokens: Vec<Token>,
    spans: Vec<(usize, usize)>,
    chars: Vec<char>,
}

impl Tokens {
    /// The text of tokens `from..to`, whitespace collapsed.
    fn text(&self, from: usize, to: usize) -> String {
        if from >= to {
            return String::new();
        }
        let raw: String = self.chars[self.spans[from].0..self.spans[to - 1].1].iter().collect();
        raw.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

fn tokenize(sql: &str) -> Tokens {
    let chars: Vec<char> = sql.to_lowercase().chars().collect();
    let (mut tokens, mut spans) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < chars.len() {
        let (c, start) = (chars[i], i);
        if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' && chars.get(i + 1) == Some(&'\'') {
                    i += 2;
                } else if chars[i] == '\'' {
                    break;
                } else {
                    i += 1;
                }
            }
            i += 1;
            tokens.push(Token::Str);
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            tokens.push(Token::Word(chars[start + 1..i.min(chars.len())].iter().collect()));
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
        spans.push((start, i.min(chars.len())));
    }
    Tokens { tokens, spans, chars }
}

/// Words that end a table reference rather than being its alias.
const KEYWORDS: &str = "on using where join left right inner full cross natural outer lateral set group order limit \
                        offset returning union except intersect window having for as select values with and or not \
                        from tablesample when then else end";

/// Words that end a join condition.
const CONDITION_ENDS: &str = "join left right inner full cross natural where group order limit offset returning union \
                              except intersect window having for set";

fn is_one_of(word: &str, words: &str) -> bool {
    words.split_whitespace().any(|w| w == word)
}

fn word(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    }
}

/// A table reference at `i` (`[schema.]table [as] [alias]`): (table, alias, index after it).
fn table_reference(tokens: &[Token], mut i: usize) -> Option<(String, String, usize)> {
    if word(tokens, i) == Some("only") {
        i += 1;
    }
    let mut table = word(tokens, i)?.to_owned();
    i += 1;
    if tokens.get(i) == Some(&Token::Punct('.')) && word(tokens, i + 1).is_some() {
        table = word(tokens, i + 1)?.to_owned();
        i += 2;
    }
    if tokens.get(i) == Some(&Token::Punct('(')) || is_one_of(&table, KEYWORDS) {
        return None; // a function call (`unnest(...)`) or a keyword, not a table
    }
    if word(tokens, i) == Some("as") {
        i += 1;
    }
    match word(tokens, i) {
        Some(alias) if !is_one_of(alias, KEYWORDS) => Some((table, alias.to_owned(), i + 1)),
        _ => Some((table.clone(), table, i)),
    }
}

/// What each `tenant_id` is tied to in `tokens`: (x, y) for `x.tenant_id = y.tenant_id`, and
/// (x, $n) for `x.tenant_id = $n` either way round, since rows pinned to one parameter share a
/// tenant (and a shard).
fn tenant_id_ties(tokens: &[Token]) -> Vec<(String, String)> {
    let column = |i: usize| -> Option<String> {
        let qualified = tokens.get(i + 1) == Some(&Token::Punct('.')) && word(tokens, i + 2) == Some("tenant_id");
        qualified.then(|| word(tokens, i).map(str::to_owned)).flatten()
    };
    let parameter = |i: usize| word(tokens, i).filter(|w| w.starts_with('$')).map(str::to_owned);
    let mut ties = Vec::new();
    for i in 0..tokens.len() {
        if let Some(left) = column(i)
            && tokens.get(i + 3) == Some(&Token::Punct('='))
            && let Some(right) = column(i + 4).or_else(|| parameter(i + 4))
        {
            ties.push((left, right));
        } else if let Some(left) = parameter(i)
            && tokens.get(i + 1) == Some(&Token::Punct('='))
            && let Some(right) = column(i + 2)
        {
            ties.push((left, right));
        }
    }
    ties
}

/// Whether `a` and `b` are tied through `ties`, directly or by way of others.
fn tied(a: &str, b: &str, ties: &[(String, String)]) -> bool {
    let mut reached = BTreeSet::from([a.to_owned()]);
    loop {
        let before = reached.len();
        for (l, r) in ties {
            if reached.contains(l) || reached.contains(r) {
                reached.insert(l.clone());
                reached.insert(r.clone());
            }
        }
        if reached.contains(b) {
            return true;
        }
        if reached.len() == before {
            return false;
        }
    }
}

/// The joins in `sql` that bring a tenant table in without tying its `tenant_id` to that of the
/// tenant tables (or derived tables: CTEs, subqueries) it is joined with, each as its clause.
///
/// Ties are `x.tenant_id = y.tenant_id` anywhere in the statement, and through pinning both to
/// the same parameter (`x.tenant_id = $1 ... y.tenant_id = $1`: one tenant, one shard).
/// `join t a on <cond>`: every other qualifier in `<cond>` that is not a reference table is tied
/// to `a`. `join t a using (...)`: the list names `tenant_id`. `from a x, b y` (and
/// `update a x ... from b y`): the tenant tables listed are tied to each other. Correlated
/// subqueries (`where exists (select ... where i.id = c.id)`) are not checked.
pub(super) fn unequated_joins(sql: &str, tenant: &BTreeSet<String>, reference: &BTreeSet<String>) -> Vec<String> {
    let sql = tokenize(sql);
    let tokens = &sql.tokens;
    // Aliases of the tables the statement names.
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..tokens.len() {
        let introduces =
            matches!(word(tokens, i), Some("from" | "join" | "update" | "into")) || tokens[i] == Token::Punct(',');
        if introduces
            && let Some((table, alias, _)) = table_reference(tokens, i + 1)
            && (tenant.contains(&table) || reference.contains(&table))
        {
            aliases.insert(alias, table);
        }
    }
    let ties = tenant_id_ties(tokens);
    let mut found = Vec::new();

    for j in (0..tokens.len()).filter(|&j| word(tokens, j) == Some("join")) {
        let Some((table, alias, mut i)) = table_reference(tokens, j + 1) else { continue };
        if !tenant.contains(&table) {
            continue;
        }
        // Start the reported clause at the join's qualifiers (`left`, `cross`...).
        let mut start = j;
        while start > 0 && matches!(word(tokens, start - 1), Some("left" | "right" | "inner" | "full" | "outer")) {
            start -= 1;
        }
        match word(tokens, i) {
            Some("using") => {
                let mut end = i + 1;
                while end < tokens.len() && tokens[end] != Token::Punct(')') {
                    end += 1;
                }
                if !tokens[i..end].contains(&Token::Word("tenant_id".into())) {
                    found.push(sql.text(start, (end + 1).min(tokens.len())));
                }
            }
            Some("on") => {
                i += 1;
                let (cond_start, mut depth) = (i, 0i32);
                while i < tokens.len() {
                    match &tokens[i] {
                        Token::Punct('(') => depth += 1,
                        Token::Punct(')') if depth == 0 => break,
                        Token::Punct(')') => depth -= 1,
                        Token::Punct(';') if depth == 0 => break,
                        Token::Word(w) if depth == 0 && is_one_of(w, CONDITION_ENDS) => break,
                        _ => {}
                    }
                    i += 1;
                }
                let condition = &tokens[cond_start..i];
                let others: BTreeSet<String> = (0..condition.len())
                    .filter(|&k| condition.get(k + 1) == Some(&Token::Punct('.')))
                    .filter_map(|k| word(condition, k).map(str::to_owned))
                    .filter(|q| *q != alias && !aliases.get(q).is_some_and(|t| reference.contains(t)))
                    .collect();
                if others.iter().any(|other| !tied(&alias, other, &ties)) {
                    found.push(sql.text(start, i));
                }
            }
            _ => {}
        }
    }

    // Comma joins: the tenant tables of each `from` list, with the target of an `update`.
    for f in (0..tokens.len()).filter(|&f| word(tokens, f) == Some("from")) {
        let mut group = Vec::new();
        // `update t x set ... from ...`: the target joins the list.
        let mut depth = 0i32;
        for b in (0..f).rev() {
            match &tokens[b] {
                Token::Punct(')') => depth += 1,
                Token::Punct('(') if depth == 0 => break,
                Token::Punct('(') => depth -= 1,
                Token::Word(w) if depth == 0 && (w == "select" || w == "delete") => break,
                Token::Word(w) if depth == 0 && w == "update" => {
                    if let Some((table, alias, _)) = table_reference(tokens, b + 1)
                        && tenant.contains(&table)
                    {
                        group.push(alias);
                    }
                    break;
                }
                _ => {}
            }
        }
        let mut i = f + 1;
        loop {
            if tokens.get(i) == Some(&Token::Punct('(')) {
                // A subquery: skip it and its alias.
                let mut depth = 0;
                while i < tokens.len() {
                    match tokens[i] {
                        Token::Punct('(') => depth += 1,
                        Token::Punct(')') => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                    if depth == 0 {
                        break;
                    }
                }
                if word(tokens, i) == Some("as") {
                    i += 1;
                }
                if word(tokens, i).is_some_and(|w| !is_one_of(w, KEYWORDS)) {
                    i += 1;
                }
            } else if let Some((table, alias, next)) = table_reference(tokens, i) {
                if tenant.contains(&table) {
                    group.push(alias);
                }
                i = next;
            } else {
                break;
            }
            if tokens.get(i) != Some(&Token::Punct(',')) {
                break;
            }
            i += 1;
        }
        if group.len() < 2 {
            continue;
        }
        if group.iter().any(|alias| !tied(&group[0], alias, &ties)) {
            found.push(sql.text(f, i));
        }
    }
    found
}

/// Where the text of a raw string (`r"`, `r#"`, `br"`...) starting at `i` begins, and its `#`s.
fn raw_string_at(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let prefix = match (chars.get(i), chars.get(i + 1)) {
        (Some('r'), _) => 1,
        (Some('b'), Some('r')) => 2,
        _ => return None,
    };
    let hashes = chars[i + prefix..].iter().take_while(|&&h| h == '#').count();
    (chars.get(i + prefix + hashes) == Some(&'"')).then_some((i + prefix + hashes + 1, hashes))
}

/// The string literals of a Rust source file, with the line each starts on: normal, raw and byte
/// strings; comments and character literals skipped.
fn string_literals(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut literals = Vec::new();
    let (mut i, mut line) = (0, 1);
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let after_ident = i > 0 && ident(chars[i - 1]);
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
        } else if let Some((start, hashes)) = raw_string_at(&chars, i).filter(|_| !after_ident) {
            let mut k = start;
            let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            while k < chars.len() && !chars[k..].starts_with(&closing) {
                k += 1;
            }
            let text: String = chars[start..k.min(chars.len())].iter().collect();
            literals.push((line, text.clone()));
            line += text.matches('\n').count();
            i = k + closing.len();
        } else if c == '"' {
            let (start_line, mut text) = (line, String::new());
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    match chars.get(i + 1) {
                        Some('n') => text.push('\n'),
                        Some('\n') => {
                            // A line continuation: the newline and the next line's indentation go.
                            line += 1;
                            i += 2;
                            while i < chars.len() && chars[i].is_whitespace() {
                                line += usize::from(chars[i] == '\n');
                                i += 1;
                            }
                            continue;
                        }
                        Some(other) => text.push(*other),
                        None => {}
                    }
                    i += 2;
                } else {
                    line += usize::from(chars[i] == '\n');
                    text.push(chars[i]);
                    i += 1;
                }
            }
            literals.push((start_line, text));
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '"') or a lifetime ('a): skip either.
            if chars.get(i + 1) == Some(&'\\') {
                i += 3; // the quote, the backslash and the escaped character ('\'' included)
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    literals
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literals of the service's source: (file, line, text).
pub(super) fn source_literals() -> Vec<(String, usize, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut literals = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        for (line, text) in string_literals(&std::fs::read_to_string(&file).unwrap()) {
            literals.push((relative.clone(), line, text));
        }
    }
    literals
}

/// How many joins in `sql` bring in a tenant table: what check 4 looks at.
pub(super) fn tenant_joins(sql: &str, tenant: &BTreeSet<String>) -> usize {
    let tokens = tokenize(sql).tokens;
    (0..tokens.len())
        .filter(|&j| word(&tokens, j) == Some("join"))
        .filter(|&j| table_reference(&tokens, j + 1).is_some_and(|(table, _, _)| tenant.contains(&table)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_check_reports_joins_that_do_not_equate_tenant_ids() {
        let tenant: BTreeSet<String> = ["invoices", "customers", "payments"].map(String::from).into();
        let reference: BTreeSet<String> = ["tenants", "users"].map(String::from).into();
        let check = |sql: &str| unequated_joins(sql, &tenant, &reference);

        // Equated, in either order, with more conditions, or tied to a constant only.
        assert!(
            check("select * from invoices i join customers c on c.tenant_id = i.tenant_id and c.id = i.customer_id")
                .is_empty()
        );
        assert!(check("select * from invoices i left join customers c on i.tenant_id = c.tenant_id and c.id = i.customer_id where i.tenant_id = $1").is_empty());
        assert!(check("select * from invoices join customers using (tenant_id, id)").is_empty());
        assert!(check("select * from customers c where c.tenant_id = $1 and exists (select 1 from invoices i where i.customer_id = c.id)").is_empty());
        // A reference table, a function, a subquery or a CTE joined in needs nothing.
        assert!(check("select * from invoices i join tenants t on t.id = i.tenant_id").is_empty());
        assert!(check("select * from invoices i join unnest($1::text[]) as u(id) on u.id = i.id").is_empty());
        assert!(
            check("select * from users u left join lateral (select * from customers c where c.id = u.id) m on true")
                .is_empty()
        );
        // Tied through one parameter: both sides on the same tenant's shard.
        assert!(check("select * from invoices i join customers c on c.id = i.customer_id and c.tenant_id = $1 where i.tenant_id = $1").is_empty());
        assert!(check("update payments p set x = 1 from invoices i where i.tenant_id = $1 and p.tenant_id = $1 and i.id = p.invoice_id").is_empty());
        // Comma joins tied anywhere in the statement.
        assert!(check("update payments p set x = 1 from invoices i, customers c where i.tenant_id = p.tenant_id and c.tenant_id = i.tenant_id").is_empty());

        assert_eq!(
            check("select * from invoices i join customers c on c.id = i.customer_id where i.tenant_id = $1"),
            ["join customers c on c.id = i.customer_id"]
        );
        assert_eq!(
            check("select * from invoices i\n  left join customers c on c.tenant_id = $1 and c.id = i.customer_id"),
            ["left join customers c on c.tenant_id = $1 and c.id = i.customer_id"]
        );
        assert_eq!(check("select * from invoices join customers using (id)"), ["join customers using (id)"]);
        assert_eq!(
            check("with d as (select * from payments) select * from d join invoices i on i.id = d.invoice_id"),
            ["join invoices i on i.id = d.invoice_id"]
        );
        assert_eq!(
            check(
                "update payments p set x = 1 from invoices i where i.tenant_id = $1 and p.tenant_id = $2 and i.id = p.invoice_id"
            ),
            ["from invoices i"]
        );
        assert_eq!(
            check(
                "select * from invoices i join customers c on c.tenant_id = coalesce($1, i.tenant_id) and c.id = i.customer_id"
            ),
            ["join customers c on c.tenant_id = coalesce($1, i.tenant_id) and c.id = i.customer_id"]
        );
        assert_eq!(
            check("select * from invoices i, customers c where c.id = i.customer_id"),
            ["from invoices i, customers c"]
        );
    }

    #[test]
    fn rust_string_literals_are_read_as_the_compiler_reads_them() {
        let source = r####"
            // "not a literal" in a comment
            let a = "select 1 from \"t\"\n";
            let b = r#"select "x" from y"#;
            let c = '"';
            let q = '\'';
            let d: &'static str = "continued \
                                   here";
            /* "nor in a block comment" */
            let e = br"bytes";
        "####;
        let literals: Vec<String> = string_literals(source).into_iter().map(|(_, s)| s).collect();
        assert_eq!(literals, ["select 1 from \"t\"\n", "select \"x\" from y", "continued here", "bytes"]);
        assert_eq!(string_literals(source)[1].0, 4, "line numbers");
    }
}

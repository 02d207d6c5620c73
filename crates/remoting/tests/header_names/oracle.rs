//! The checked-in list of Java header classes (`tests/data/java_headers.txt`): its parser, and
//! the keys a class carries once its superclasses are walked the way Java's encoder walks them.

use std::collections::BTreeMap;

/// The file's text, read at compile time so that a change to it rebuilds the test.
pub const TEXT: &str = include_str!("../data/java_headers.txt");

/// Longest superclass chain accepted: guards the walk against a cycle in the file.
const MAX_CHAIN_CLASSES: usize = 8;

/// One instance field of a Java class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaField {
    /// Field name, which is the wire key.
    pub name: String,
    /// Annotated `@CFNotNull`.
    pub required: bool,
}

/// One Java header class as the file lists it.
#[derive(Debug, Default)]
pub struct JavaClass {
    /// Path of the source file in the Java repository.
    pub path: String,
    /// Superclass, when it is listed too.
    pub extends: Option<String>,
    /// Fields the class itself declares, in source order.
    pub fields: Vec<JavaField>,
}

/// What a kept difference allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// The Rust header does not declare the Java field.
    Absent,
    /// Java requires the field, the Rust header does not.
    Optional,
    /// The Rust header requires the field, Java does not.
    Required,
    /// The Rust header declares a key the Java class lacks.
    Extra,
}

/// A difference kept on purpose, with its reason.
#[derive(Debug)]
pub struct Known {
    /// Class the Rust header mirrors, or the superclass declaring the field.
    pub class: String,
    /// Field (wire key) concerned.
    pub field: String,
    /// What is allowed.
    pub difference: Difference,
    /// Why; must not be empty.
    pub reason: String,
}

/// The whole file.
#[derive(Debug, Default)]
pub struct Oracle {
    /// Java repository the classes were read from.
    pub source: String,
    /// Commit they were read at.
    pub commit: String,
    /// Classes by simple name.
    pub classes: BTreeMap<String, JavaClass>,
    /// Differences kept on purpose.
    pub known: Vec<Known>,
}

/// A field of a class with the class that declares it (itself or a superclass).
#[derive(Debug, Clone)]
pub struct InheritedField {
    /// The field.
    pub field: JavaField,
    /// Simple name of the declaring class.
    pub declared_by: String,
}

impl Oracle {
    /// Parses the file, naming the line of the first malformed entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut oracle = Oracle::default();
        let mut current: Option<String> = None;
        for (index, line) in text.lines().enumerate() {
            let at = |message: &str| format!("line {}: {message}: {line:?}", index + 1);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            match words.as_slice() {
                ["source", url] => oracle.source = (*url).to_owned(),
                ["commit", sha] if is_commit(sha) => oracle.commit = (*sha).to_owned(),
                ["class", name, path] => {
                    if !path.ends_with(&format!("/{name}.java")) {
                        return Err(at("the path does not end with the class's file name"));
                    }
                    let class = JavaClass { path: (*path).to_owned(), ..JavaClass::default() };
                    if oracle.classes.insert((*name).to_owned(), class).is_some() {
                        return Err(at("class listed twice"));
                    }
                    current = Some((*name).to_owned());
                }
                ["extends", superclass] => {
                    oracle.current(&current).ok_or_else(|| at("outside a class"))?.extends =
                        Some((*superclass).to_owned())
                }
                ["field", name, flag, _java_type @ ..] => {
                    let required = match *flag {
                        "required" => true,
                        "optional" => false,
                        _ => return Err(at("expected required or optional")),
                    };
                    let class = oracle.current(&current).ok_or_else(|| at("outside a class"))?;
                    class.fields.push(JavaField { name: (*name).to_owned(), required });
                }
                ["known", ..] => {
                    current = None;
                    oracle.known.push(parse_known(trimmed).ok_or_else(|| at("malformed known difference"))?);
                }
                _ => return Err(at("unrecognised line")),
            }
        }
        if oracle.source.is_empty() || oracle.commit.is_empty() {
            return Err("the file names no source repository or no commit".to_owned());
        }
        Ok(oracle)
    }

    fn current(&mut self, name: &Option<String>) -> Option<&mut JavaClass> {
        self.classes.get_mut(name.as_deref()?)
    }

    /// Every field `class` carries on the wire, its own and its superclasses', by name.
    pub fn wire_fields(&self, class: &str) -> Result<BTreeMap<String, InheritedField>, String> {
        let mut fields = BTreeMap::new();
        let mut next = Some(class);
        for _ in 0..MAX_CHAIN_CLASSES {
            let Some(name) = next else {
                return Ok(fields);
            };
            let listed = self.classes.get(name).ok_or_else(|| format!("class {name} is not listed"))?;
            for field in &listed.fields {
                let inherited = InheritedField { field: field.clone(), declared_by: name.to_owned() };
                fields.entry(field.name.clone()).or_insert(inherited);
            }
            next = listed.extends.as_deref();
        }
        Err(format!("the superclasses of {class} go deeper than {MAX_CHAIN_CLASSES} classes"))
    }

    /// Names of the classes some listed class extends.
    pub fn superclasses(&self) -> Vec<&str> {
        self.classes.values().filter_map(|class| class.extends.as_deref()).collect()
    }
}

fn is_commit(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// `known <Class> <field> <kind>: <reason>`.
fn parse_known(line: &str) -> Option<Known> {
    let (head, reason) = line.split_once(':')?;
    let words: Vec<&str> = head.split_whitespace().collect();
    let ["known", class, field, kind] = words.as_slice() else {
        return None;
    };
    let difference = match *kind {
        "absent" => Difference::Absent,
        "optional" => Difference::Optional,
        "required" => Difference::Required,
        "extra" => Difference::Extra,
        _ => return None,
    };
    let reason = reason.trim();
    if reason.is_empty() {
        return None;
    }
    Some(Known {
        class: (*class).to_owned(),
        field: (*field).to_owned(),
        difference,
        reason: reason.to_owned(),
    })
}

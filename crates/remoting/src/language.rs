//! `LanguageCode`: which SDK sent a command. A byte in the binary header, a name in JSON.

/// The client language of a command (Java `LanguageCode`). Unknown values decode to
/// [`LanguageCode::Other`] instead of failing: peers newer than us must still be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs)]
pub enum LanguageCode {
    #[default]
    Java,
    Cpp,
    Dotnet,
    Python,
    Delphi,
    Erlang,
    Ruby,
    Other,
    Http,
    Go,
    Php,
    Oms,
    Rust,
    NodeJs,
}

const ALL: [(LanguageCode, &str); 14] = [
    (LanguageCode::Java, "JAVA"),
    (LanguageCode::Cpp, "CPP"),
    (LanguageCode::Dotnet, "DOTNET"),
    (LanguageCode::Python, "PYTHON"),
    (LanguageCode::Delphi, "DELPHI"),
    (LanguageCode::Erlang, "ERLANG"),
    (LanguageCode::Ruby, "RUBY"),
    (LanguageCode::Other, "OTHER"),
    (LanguageCode::Http, "HTTP"),
    (LanguageCode::Go, "GO"),
    (LanguageCode::Php, "PHP"),
    (LanguageCode::Oms, "OMS"),
    (LanguageCode::Rust, "RUST"),
    (LanguageCode::NodeJs, "NODE_JS"),
];

impl LanguageCode {
    /// The byte of the binary (ROCKETMQ) header.
    pub fn code(self) -> u8 {
        // The table is indexed by the Java ordinal, so the position is the code.
        ALL.iter().position(|(language, _)| *language == self).map_or(7, |index| index as u8)
    }

    /// The Java constant name used in JSON headers.
    pub fn name(self) -> &'static str {
        ALL[usize::from(self.code())].1
    }

    /// Decodes the binary header byte; unknown bytes become `Other`.
    pub fn from_code(code: u8) -> Self {
        ALL.get(usize::from(code)).map_or(Self::Other, |(language, _)| *language)
    }

    /// Decodes the JSON name; unknown names become `Other`.
    pub fn from_name(name: &str) -> Self {
        ALL.iter().find(|(_, known)| *known == name).map_or(Self::Other, |(language, _)| *language)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for (index, (language, name)) in ALL.iter().enumerate() {
            assert_eq!(usize::from(language.code()), index);
            assert_eq!(LanguageCode::from_code(language.code()), *language);
            assert_eq!(LanguageCode::from_name(name), *language);
            assert_eq!(language.name(), *name);
        }
        assert_eq!(LanguageCode::from_code(200), LanguageCode::Other);
        assert_eq!(LanguageCode::from_name("COBOL"), LanguageCode::Other);
    }
}

//! The message catalogue: every text a gateway page shows, in English and Swedish,
//! chosen from `Accept-Language`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Sv,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Sv => "sv",
        }
    }

    /// The supported language the client ranks highest (RFC 9110 q-values); English
    /// when none is supported or the header is absent or unreadable.
    pub fn negotiate(accept_language: Option<&str>) -> Lang {
        let Some(header) = accept_language else {
            return Lang::En;
        };
        let mut best = (Lang::En, 0.0_f32);
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()))
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "sv" => Lang::Sv,
                "en" => Lang::En,
                _ => continue,
            };
            if q > best.1 {
                best = (lang, q);
            }
        }
        best.0
    }
}

/// Title and explanation of each error page.
pub struct ErrorText {
    pub title: &'static str,
    pub text: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    UriTooLong,
    UnknownHost,
    Denied,
    SignInRequired,
    NotFound,
    UpstreamUnavailable,
    Internal,
}

impl ErrorKind {
    pub fn text(self, lang: Lang) -> ErrorText {
        let (title, text) = match (self, lang) {
            (ErrorKind::BadRequest, Lang::En) => ("This address cannot be used", "The address is written in a way the gateway does not accept, so the request was not passed on."),
            (ErrorKind::BadRequest, Lang::Sv) => ("Adressen kan inte användas", "Adressen är skriven på ett sätt som gatewayen inte godtar, så begäran skickades inte vidare."),
            (ErrorKind::UriTooLong, Lang::En) => ("The address is too long", "The gateway does not pass on addresses this long."),
            (ErrorKind::UriTooLong, Lang::Sv) => ("Adressen är för lång", "Gatewayen skickar inte vidare så långa adresser."),
            (ErrorKind::UnknownHost, Lang::En) => ("This site is not served here", "No application is configured for this host name. Check the address."),
            (ErrorKind::UnknownHost, Lang::Sv) => ("Webbplatsen finns inte här", "Inget program är konfigurerat för det här värdnamnet. Kontrollera adressen."),
            (ErrorKind::Denied, Lang::En) => ("Access denied", "The security policy does not allow this request. Contact your administrator if you need access."),
            (ErrorKind::Denied, Lang::Sv) => ("Åtkomst nekad", "Säkerhetsprincipen tillåter inte den här begäran. Kontakta administratören om du behöver åtkomst."),
            (ErrorKind::SignInRequired, Lang::En) => ("Sign-in required", "You need to sign in before you can open this page."),
            (ErrorKind::SignInRequired, Lang::Sv) => ("Inloggning krävs", "Du måste logga in innan du kan öppna den här sidan."),
            (ErrorKind::NotFound, Lang::En) => ("Page not found", "The gateway has no page at this address."),
            (ErrorKind::NotFound, Lang::Sv) => ("Sidan hittades inte", "Gatewayen har ingen sida på den här adressen."),
            (ErrorKind::UpstreamUnavailable, Lang::En) => ("The application is not answering", "The gateway could not reach the application. Try again in a moment."),
            (ErrorKind::UpstreamUnavailable, Lang::Sv) => ("Programmet svarar inte", "Gatewayen kunde inte nå programmet. Försök igen om en stund."),
            (ErrorKind::Internal, Lang::En) => ("Something went wrong", "The gateway could not complete the request. Nothing was passed on."),
            (ErrorKind::Internal, Lang::Sv) => ("Något gick fel", "Gatewayen kunde inte slutföra begäran. Inget skickades vidare."),
        };
        ErrorText { title, text }
    }
}

pub fn reference_label(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Reference",
        Lang::Sv => "Referens",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        let cases = [
            (None, Lang::En),
            (Some("sv"), Lang::Sv),
            (Some("sv-SE,sv;q=0.9,en;q=0.8"), Lang::Sv),
            (Some("en-GB,sv;q=0.5"), Lang::En),
            (Some("de-DE,sv;q=0.3"), Lang::Sv),
            (Some("fi"), Lang::En),
            (Some("en;q=0.2, SV;q=0.9"), Lang::Sv),
            (Some(";;;,q=x"), Lang::En),
        ];
        for (header, lang) in cases {
            assert_eq!(Lang::negotiate(header), lang, "{header:?}");
        }
    }
}

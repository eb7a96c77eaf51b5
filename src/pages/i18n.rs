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

/// Every text of the second-factor pages, in one language.
pub struct Texts {
    pub enrol_title: &'static str,
    pub enrol_intro: &'static str,
    pub enrol_step_open: &'static str,
    pub enrol_step_scan: &'static str,
    pub enrol_open_on_phone: &'static str,
    pub enrol_cant_scan: &'static str,
    pub enrol_cant_scan_intro: &'static str,
    pub enrol_account: &'static str,
    pub enrol_key: &'static str,
    pub enrol_step_code: &'static str,
    pub enrol_closed_title: &'static str,
    pub enrol_closed_text: &'static str,
    pub code_label: &'static str,
    pub verify_button: &'static str,
    pub verify_title: &'static str,
    pub verify_intro: &'static str,
    pub use_recovery: &'static str,
    pub recovery_title: &'static str,
    pub recovery_intro: &'static str,
    pub recovery_label: &'static str,
    pub back_to_code: &'static str,
    pub codes_title: &'static str,
    pub codes_intro: &'static str,
    pub codes_download: &'static str,
    pub codes_print: &'static str,
    pub continue_button: &'static str,
    pub passed_title: &'static str,
    /// Followed by the number of recovery codes left.
    pub codes_left: &'static str,
    pub wrong_code: &'static str,
    pub locked: &'static str,
    pub expired_title: &'static str,
    pub expired_text: &'static str,
    pub sign_in_again: &'static str,
    pub no_method: &'static str,
    pub login_title: &'static str,
    pub username_label: &'static str,
    pub password_label: &'static str,
    pub sign_in_button: &'static str,
    pub wrong_password: &'static str,
    pub signed_out_title: &'static str,
    pub signed_out_text: &'static str,
    pub account_title: &'static str,
    pub account_intro: &'static str,
    pub methods_heading: &'static str,
    pub authenticator_app: &'static str,
    pub added_label: &'static str,
    pub last_used_label: &'static str,
    pub never: &'static str,
    pub recovery_heading: &'static str,
    pub new_codes_button: &'static str,
    pub new_codes_hint: &'static str,
    pub new_codes_done: &'static str,
    pub back_to_account: &'static str,
    pub sessions_heading: &'static str,
    pub sign_out_everywhere: &'static str,
    pub sign_out_everywhere_hint: &'static str,
    pub signed_out_everywhere: &'static str,
    pub activity_heading: &'static str,
    pub add_device_button: &'static str,
    pub device_name_label: &'static str,
    pub rename_button: &'static str,
    pub remove_button: &'static str,
    pub remove_confirm_title: &'static str,
    pub remove_confirm_text: &'static str,
    pub cancel: &'static str,
    pub device_limit: &'static str,
    pub last_device_refused: &'static str,
    pub invalid_device_name: &'static str,
    pub two_factor_heading: &'static str,
    pub two_factor_on: &'static str,
    pub two_factor_off: &'static str,
    pub turn_on: &'static str,
    pub turn_off: &'static str,
    pub opt_out_not_allowed: &'static str,
    pub admin_title: &'static str,
    pub admin_users: &'static str,
    pub admin_find: &'static str,
    pub admin_devices: &'static str,
    pub admin_locked: &'static str,
    pub admin_reset_selected: &'static str,
    pub admin_unlock: &'static str,
    pub admin_open_enrolment: &'static str,
    pub admin_confirm_title: &'static str,
    pub admin_confirm_text: &'static str,
    pub admin_done: &'static str,
    pub admin_audit: &'static str,
    pub admin_back: &'static str,
    pub email_send: &'static str,
    pub email_title: &'static str,
    pub email_intro: &'static str,
    pub email_resend: &'static str,
    pub email_wait: &'static str,
    pub email_failed: &'static str,
    pub email_subject: &'static str,
    /// Followed by the code, then `email_body_after`.
    pub email_body: &'static str,
    pub email_body_after: &'static str,
}

const EN: Texts = Texts {
    enrol_title: "Set up two-factor authentication",
    enrol_intro: "This app now asks for a code from an authenticator app each time you sign in. Set it up once:",
    enrol_step_open: "Open your authenticator app (Microsoft Authenticator, Google Authenticator or another) and add an account.",
    enrol_step_scan: "Scan this QR code with the app.",
    enrol_open_on_phone: "On this phone? Open it in your authenticator app",
    enrol_cant_scan: "Can't scan the QR code?",
    enrol_cant_scan_intro: "Add the account by hand with these details (time-based):",
    enrol_account: "Account",
    enrol_key: "Key",
    enrol_step_code: "Enter the six-digit code the app shows, to check that it works.",
    enrol_closed_title: "Two-factor authentication is not set up",
    enrol_closed_text: "Your account has no authenticator app yet, and setting one up is not allowed from here. Contact your administrator.",
    code_label: "Code",
    verify_button: "Verify",
    verify_title: "Enter your code",
    verify_intro: "Open your authenticator app and enter the six-digit code for this account.",
    use_recovery: "Use a recovery code instead",
    recovery_title: "Use a recovery code",
    recovery_intro: "Enter one of the recovery codes you saved when you set up two-factor authentication. Each code works once.",
    recovery_label: "Recovery code",
    back_to_code: "Use the code from my authenticator app",
    codes_title: "Save your recovery codes",
    codes_intro: "If you lose your phone, sign in with one of these codes. Each works once. They are shown only now: download or print them and keep them somewhere safe.",
    codes_download: "Download",
    codes_print: "Print",
    continue_button: "Continue",
    passed_title: "You are signed in",
    codes_left: "Recovery codes left:",
    wrong_code: "That code did not work. Check the code and try again.",
    locked: "Too many attempts. Wait a while before you try again.",
    expired_title: "Please sign in again",
    expired_text: "Your sign-in was not finished in time, or it was already used. Nothing was passed on to the app.",
    sign_in_again: "Sign in again",
    no_method: "Lost your phone and your recovery codes? Contact your administrator to reset your two-factor authentication.",
    login_title: "Sign in",
    username_label: "User name",
    password_label: "Password",
    sign_in_button: "Sign in",
    wrong_password: "The user name or password is wrong.",
    signed_out_title: "You are signed out",
    signed_out_text: "Your session with the gateway has ended. Close the browser if this is a shared computer.",
    account_title: "Security info",
    account_intro: "The methods you use to prove who you are when you sign in as",
    methods_heading: "Sign-in methods",
    authenticator_app: "Authenticator app",
    added_label: "Added",
    last_used_label: "Last used",
    never: "never",
    recovery_heading: "Recovery codes",
    new_codes_button: "Create new recovery codes",
    new_codes_hint: "Your old codes stop working at once. You may be asked for a code from your authenticator app first.",
    new_codes_done: "These are your new recovery codes. The old ones no longer work.",
    back_to_account: "Back to security info",
    sessions_heading: "Sessions",
    sign_out_everywhere: "Sign out everywhere",
    sign_out_everywhere_hint: "Ends every session of yours, in every browser, including this one.",
    signed_out_everywhere: "You are signed out everywhere.",
    activity_heading: "Recent activity",
    add_device_button: "Add an authenticator app",
    device_name_label: "Name",
    rename_button: "Rename",
    remove_button: "Remove",
    remove_confirm_title: "Remove this authenticator app?",
    remove_confirm_text: "Codes from it will stop working. Remove the account from the app on your phone too.",
    cancel: "Cancel",
    device_limit: "You already have as many authenticator apps as allowed. Remove one before you add another, or ask your administrator.",
    last_device_refused: "This is your only authenticator app, and two-factor authentication is required for you. Add another app before you remove this one, or ask your administrator to reset it.",
    invalid_device_name: "Give the app a name of 1 to 40 characters that none of your other apps has.",
    two_factor_heading: "Two-factor authentication",
    two_factor_on: "On: a code from your authenticator app is needed each time you sign in to this app.",
    two_factor_off: "Off: your password alone signs you in to this app. Turn it on to protect your account with a code from your phone.",
    turn_on: "Turn on",
    turn_off: "Turn off",
    opt_out_not_allowed: "Your organisation does not allow turning two-factor authentication off.",
    admin_title: "Administration",
    admin_users: "Users",
    admin_find: "Find",
    admin_devices: "Apps",
    admin_locked: "Locked",
    admin_reset_selected: "Reset two-factor authentication of the selected users",
    admin_unlock: "Unlock",
    admin_open_enrolment: "Open enrolment for 24 h",
    admin_confirm_title: "Confirm the reset",
    admin_confirm_text: "These users lose their authenticator apps and recovery codes and are signed out everywhere; they set up two-factor authentication again at their next sign-in. Enter a code from your own authenticator app to confirm.",
    admin_done: "Done.",
    admin_audit: "Audit trail",
    admin_back: "Back to administration",
    email_send: "E-mail a code to",
    email_title: "Enter the code we e-mailed you",
    email_intro: "We sent a code to",
    email_resend: "Send a new code",
    email_wait: "A code was sent a moment ago. Wait a minute before asking for another.",
    email_failed: "The code could not be sent. Try another way, or try again later.",
    email_subject: "Your sign-in code",
    email_body: "Your sign-in code is",
    email_body_after: "It works once, for a few minutes. If you did not just try to sign in, someone may know your password: change it.",
};

const SV: Texts = Texts {
    enrol_title: "Konfigurera tvåfaktorsautentisering",
    enrol_intro: "Programmet ber nu om en kod från en autentiseringsapp varje gång du loggar in. Konfigurera den en gång:",
    enrol_step_open: "Öppna autentiseringsappen (Microsoft Authenticator, Google Authenticator eller en annan) och lägg till ett nytt konto.",
    enrol_step_scan: "Skanna QR-koden med appen.",
    enrol_open_on_phone: "På den här telefonen? Öppna i autentiseringsappen",
    enrol_cant_scan: "Kan du inte skanna QR-koden?",
    enrol_cant_scan_intro: "Lägg till kontot manuellt med de här uppgifterna (tidsbaserat):",
    enrol_account: "Konto",
    enrol_key: "Nyckel",
    enrol_step_code: "Ange den sexsiffriga koden som appen visar, för att kontrollera att det fungerar.",
    enrol_closed_title: "Tvåfaktorsautentisering är inte konfigurerad",
    enrol_closed_text: "Ditt konto har ingen autentiseringsapp ännu, och den får inte konfigureras härifrån. Kontakta administratören.",
    code_label: "Kod",
    verify_button: "Verifiera",
    verify_title: "Ange din kod",
    verify_intro: "Öppna autentiseringsappen och ange den sexsiffriga koden för det här kontot.",
    use_recovery: "Ange en återställningskod istället",
    recovery_title: "Använd en återställningskod",
    recovery_intro: "Ange en av återställningskoderna du fick under konfigurationen. Varje kod fungerar en gång.",
    recovery_label: "Återställningskod",
    back_to_code: "Använd koden från autentiseringsappen",
    codes_title: "Spara dina återställningskoder",
    codes_intro: "Om du tappar bort telefonen kan du logga in med en av de här koderna. Varje kod fungerar en gång. De visas bara nu: ladda ner eller skriv ut dem och förvara dem säkert.",
    codes_download: "Ladda ner",
    codes_print: "Skriv ut",
    continue_button: "Fortsätt",
    passed_title: "Du är inloggad",
    codes_left: "Återställningskoder kvar:",
    wrong_code: "Koden fungerade inte. Kontrollera koden och försök igen.",
    locked: "För många försök. Vänta en stund innan du försöker igen.",
    expired_title: "Logga in igen",
    expired_text: "Inloggningen slutfördes inte i tid, eller så har den redan använts. Inget skickades vidare till programmet.",
    sign_in_again: "Logga in igen",
    no_method: "Har du tappat bort både telefonen och återställningskoderna? Kontakta administratören för att återställa tvåfaktorsautentiseringen.",
    login_title: "Logga in",
    username_label: "Användarnamn",
    password_label: "Lösenord",
    sign_in_button: "Logga in",
    wrong_password: "Användarnamnet eller lösenordet är fel.",
    signed_out_title: "Du är utloggad",
    signed_out_text: "Din session med gatewayen har avslutats. Stäng webbläsaren om datorn delas med andra.",
    account_title: "Säkerhetsinformation",
    account_intro: "Metoderna du använder för att bevisa vem du är när du loggar in som",
    methods_heading: "Inloggningsmetoder",
    authenticator_app: "Autentiseringsapp",
    added_label: "Tillagd",
    last_used_label: "Senast använd",
    never: "aldrig",
    recovery_heading: "Återställningskoder",
    new_codes_button: "Skapa nya återställningskoder",
    new_codes_hint: "Dina gamla koder slutar fungera direkt. Du kan först bli ombedd att ange en kod från autentiseringsappen.",
    new_codes_done: "Det här är dina nya återställningskoder. De gamla fungerar inte längre.",
    back_to_account: "Tillbaka till säkerhetsinformation",
    sessions_heading: "Sessioner",
    sign_out_everywhere: "Logga ut överallt",
    sign_out_everywhere_hint: "Avslutar alla dina sessioner, i alla webbläsare, även den här.",
    signed_out_everywhere: "Du är utloggad överallt.",
    activity_heading: "Senaste aktivitet",
    add_device_button: "Lägg till en autentiseringsapp",
    device_name_label: "Namn",
    rename_button: "Byt namn",
    remove_button: "Ta bort",
    remove_confirm_title: "Ta bort autentiseringsappen?",
    remove_confirm_text: "Koder från den slutar fungera. Ta också bort kontot från appen i telefonen.",
    cancel: "Avbryt",
    device_limit: "Du har redan så många autentiseringsappar som tillåts. Ta bort en innan du lägger till en ny, eller kontakta administratören.",
    last_device_refused: "Det här är din enda autentiseringsapp, och tvåfaktorsautentisering krävs för dig. Lägg till en annan app innan du tar bort den här, eller be administratören att återställa den.",
    invalid_device_name: "Ge appen ett namn på 1 till 40 tecken som ingen av dina andra appar har.",
    two_factor_heading: "Tvåfaktorsautentisering",
    two_factor_on: "På: en kod från autentiseringsappen behövs varje gång du loggar in i det här programmet.",
    two_factor_off: "Av: lösenordet räcker för att logga in i det här programmet. Aktivera för att skydda kontot med en kod från telefonen.",
    turn_on: "Aktivera",
    turn_off: "Inaktivera",
    opt_out_not_allowed: "Din organisation tillåter inte att tvåfaktorsautentisering stängs av.",
    admin_title: "Administration",
    admin_users: "Användare",
    admin_find: "Sök",
    admin_devices: "Appar",
    admin_locked: "Spärrad",
    admin_reset_selected: "Återställ tvåfaktorsautentisering för valda användare",
    admin_unlock: "Lås upp",
    admin_open_enrolment: "Öppna registrering i 24 h",
    admin_confirm_title: "Bekräfta återställningen",
    admin_confirm_text: "De här användarna förlorar sina autentiseringsappar och återställningskoder och loggas ut överallt; de konfigurerar tvåfaktorsautentisering igen vid nästa inloggning. Ange en kod från din egen autentiseringsapp för att bekräfta.",
    admin_done: "Klart.",
    admin_audit: "Granskningslogg",
    admin_back: "Tillbaka till administrationen",
    email_send: "Skicka en kod med e-post till",
    email_title: "Ange koden vi skickade med e-post",
    email_intro: "Vi skickade en kod till",
    email_resend: "Skicka en ny kod",
    email_wait: "En kod skickades nyss. Vänta en minut innan du ber om en ny.",
    email_failed: "Koden kunde inte skickas. Logga in på ett annat sätt, eller försök igen senare.",
    email_subject: "Din inloggningskod",
    email_body: "Din inloggningskod är",
    email_body_after: "Den fungerar en gång, i några minuter. Om du inte just försökte logga in kan någon känna till ditt lösenord: byt det.",
};

/// How an audit event reads on the user's own activity list.
pub fn event_label(lang: Lang, event: &str) -> &str {
    match (lang, event) {
        (Lang::En, "login_ok") => "Password accepted",
        (Lang::Sv, "login_ok") => "Lösenordet godkändes",
        (Lang::En, "login_failed") => "Wrong password",
        (Lang::Sv, "login_failed") => "Fel lösenord",
        (Lang::En, "second_factor_ok") => "Code accepted",
        (Lang::Sv, "second_factor_ok") => "Koden godkändes",
        (Lang::En, "second_factor_failed") => "Wrong code",
        (Lang::Sv, "second_factor_failed") => "Fel kod",
        (Lang::En, "enrolled") => "Authenticator app added",
        (Lang::Sv, "enrolled") => "Autentiseringsapp tillagd",
        (Lang::En, "recovery_code_used") => "Recovery code used",
        (Lang::Sv, "recovery_code_used") => "Återställningskod använd",
        (Lang::En, "recovery_codes_renewed") => "New recovery codes created",
        (Lang::Sv, "recovery_codes_renewed") => "Nya återställningskoder skapade",
        (Lang::En, "replay_rejected") => "A used code was tried again",
        (Lang::Sv, "replay_rejected") => "En använd kod prövades igen",
        (Lang::En, "locked_out") => "Locked after too many attempts",
        (Lang::Sv, "locked_out") => "Spärrad efter för många försök",
        (Lang::En, "signed_out" | "signed_out_everywhere") => "Signed out",
        (Lang::Sv, "signed_out" | "signed_out_everywhere") => "Utloggad",
        (Lang::En, "device_removed") => "Authenticator app removed",
        (Lang::Sv, "device_removed") => "Autentiseringsapp borttagen",
        (Lang::En, "device_renamed") => "Authenticator app renamed",
        (Lang::Sv, "device_renamed") => "Autentiseringsapp fick nytt namn",
        (Lang::En, "mfa_turned_on") => "Two-factor authentication turned on",
        (Lang::Sv, "mfa_turned_on") => "Tvåfaktorsautentisering aktiverad",
        (Lang::En, "mfa_turned_off") => "Two-factor authentication turned off",
        (Lang::Sv, "mfa_turned_off") => "Tvåfaktorsautentisering inaktiverad",
        (Lang::En, "reset") => "Reset by an administrator",
        (Lang::Sv, "reset") => "Återställd av en administratör",
        (Lang::En, "unlocked") => "Unlocked by an administrator",
        (Lang::Sv, "unlocked") => "Upplåst av en administratör",
        (_, other) => other,
    }
}

pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::En => &EN,
        Lang::Sv => &SV,
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

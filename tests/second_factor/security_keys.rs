//! Security keys in a real browser: Chromium's virtual authenticator (WebDriver's
//! virtual-authenticator commands) stands in for a USB key. The user enrols it
//! instead of an app, signs in with it, adds an app, and removes the key.

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::Locator;
use zeroize::Zeroizing;

use super::harness::{Gateway, LegacyApp};
use super::{chromium, click, code, sign_in_on_the_apps_form, type_code_and_submit};
use portvakt::factors::totp::TotpSecret;

/// `POST /session/{id}/webauthn/authenticator`: a CTAP2 USB key that verifies its
/// user and is touched at once.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/webauthn/authenticator",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let options = serde_json::json!({
            "protocol": "ctap2",
            "transport": "usb",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "automaticPresenceSimulation": true,
        });
        (http::Method::POST, Some(options.to_string()))
    }
}

async fn text_of(browser: &fantoccini::Client) -> Result<String, fantoccini::error::CmdError> {
    browser.source().await
}

/// Runs the key page's ceremony and waits for the page it leads to.
async fn use_the_key(browser: &fantoccini::Client) -> Result<(), fantoccini::error::CmdError> {
    browser
        .wait()
        .for_element(Locator::Css("#webauthn-start:not([hidden])"))
        .await?;
    click(browser, "#webauthn-start").await?;
    browser
        .wait()
        .for_element(Locator::XPath("//*[not(@id='webauthn-form')]//h1"))
        .await?;
    Ok(())
}

#[test]
fn a_browser_enrols_a_security_key_signs_in_with_it_and_removes_it() {
    let chromium = chromium::Chromium::start();
    let app = LegacyApp::start(&["alice:wonderland:admin"]);
    // E-mailed codes as a fallback beside an app: never beside a key alone.
    let gateway = Gateway::start_with_files(
        &format!(
            "users: {{ file: users.yaml }}\nemail: {{ from: \"Portvakt <portvakt@example.com>\", file: mail.log }}\n\
             second_factor: {{ email: fallback }}\n\
             apps:\n  intranet:\n    hosts: [localhost]\n    upstream: {}\n    mfa: required\n\
             \x20   login: {{ path: /login, username_field: username, logout_path: /logout }}\n",
            app.url()
        ),
        &[("users.yaml", "users:\n  alice: { email: alice@example.com }\n")],
    );
    let base = format!("http://localhost:{}", gateway.port);
    let shots = chromium::Screenshots::new();

    let result = chromium::runtime().block_on(async {
        let browser = chromium.connect().await;
        let journey = async {
            browser.issue_cmd(AddVirtualAuthenticator).await?;

            // Enrolment: a security key instead of an app.
            browser.goto(&format!("{base}/")).await?;
            sign_in_on_the_apps_form(&browser).await?;
            browser
                .wait()
                .for_element(Locator::Css("a[href='/.portvakt/enrol/security-key']"))
                .await?;
            click(&browser, "a[href='/.portvakt/enrol/security-key']").await?;
            browser
                .wait()
                .for_element(Locator::Css("#webauthn-start:not([hidden])"))
                .await?;
            shots.save("security-key.png", &browser.screenshot().await?);
            click(&browser, "#webauthn-start").await?;
            if browser
                .wait()
                .for_element(Locator::Css("ol.codes"))
                .await
                .is_err()
            {
                panic!("no recovery codes after the key: {}", text_of(&browser).await?);
            }
            click(&browser, "form[action='/.portvakt/continue'] button").await?;
            browser
                .wait()
                .for_element(Locator::XPath("//*[contains(text(), 'Welcome')]"))
                .await?;

            // Signed out, then back with the key.
            browser.goto(&format!("{base}/logout")).await?;
            sign_in_on_the_apps_form(&browser).await?;
            browser
                .wait()
                .for_element(Locator::Css("a[href='/.portvakt/security-key']"))
                .await?;
            let verify = text_of(&browser).await?;
            assert!(
                !verify.contains("name=\"code\""),
                "no app to ask a code of: {verify}"
            );
            assert!(
                !verify.contains("/.portvakt/email/send"),
                "no e-mailed code beside a key alone: {verify}"
            );
            assert!(
                verify.contains("Use your security key to confirm it is you."),
                "{verify}"
            );
            click(&browser, "a[href='/.portvakt/security-key']").await?;
            use_the_key(&browser).await?;
            browser
                .wait()
                .for_element(Locator::XPath("//*[contains(text(), 'Welcome')]"))
                .await?;
            browser.goto(&format!("{base}/whoami")).await?;
            let echo = text_of(&browser).await?;
            assert!(
                echo.contains("[\"x-portvakt-method\",\"security_key\"]"),
                "{echo}"
            );

            // The security info lists the key; an app is added beside it.
            browser.goto(&format!("{base}/.portvakt/account")).await?;
            let account = text_of(&browser).await?;
            assert!(
                account.contains("<td>Security key</td><td>Security key</td>"),
                "{account}"
            );
            click(&browser, "details.add-method summary").await?;
            browser
                .find(Locator::Id("new-device"))
                .await?
                .send_keys("Phone")
                .await?;
            click(&browser, "form[action='/.portvakt/account/add-device'] button").await?;
            browser.wait().for_element(Locator::Css("code.secret")).await?;
            click(&browser, "details summary").await?;
            let key = browser
                .find(Locator::Css("code.secret"))
                .await?
                .text()
                .await?
                .replace(' ', "");
            let secret = TotpSecret::from_bytes(Zeroizing::new(
                data_encoding::BASE32_NOPAD.decode(key.as_bytes()).unwrap(),
            ));
            type_code_and_submit(&browser, &code(&secret, 0)).await?;
            browser
                .wait()
                .for_element(Locator::Css("form[action='/.portvakt/continue']"))
                .await?;
            click(&browser, "form[action='/.portvakt/continue'] button").await?;

            // With the app there, the key may go: Delete, then Yes.
            browser
                .wait()
                .for_element(Locator::Css(
                    "form[action='/.portvakt/account/security-key/remove'] button",
                ))
                .await?;
            click(
                &browser,
                "form[action='/.portvakt/account/security-key/remove'] button",
            )
            .await?;
            browser
                .wait()
                .for_element(Locator::XPath(
                    "//*[contains(text(), 'Remove this security key?')]",
                ))
                .await?;
            click(
                &browser,
                "form[action='/.portvakt/account/security-key/remove/confirm'] button",
            )
            .await?;
            browser
                .wait()
                .for_element(Locator::XPath("//*[contains(text(), 'Security key removed')]"))
                .await?;
            let after = text_of(&browser).await?;
            assert!(
                !after.contains("<td>Security key</td><td>Security key</td>"),
                "{after}"
            );
            assert!(
                after.contains("<td>Authenticator app</td><td>Phone</td>"),
                "{after}"
            );
            assert!(after.contains("Security key added"), "the audit trail: {after}");
            Ok::<(), fantoccini::error::CmdError>(())
        };
        let outcome = journey.await;
        let _ = browser.close().await;
        outcome
    });
    drop(chromium);
    result.expect("the security-key journey");
    let log = gateway.log();
    assert!(log.contains("security key enrolled"), "{log}");
}

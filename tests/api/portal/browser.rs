//! A real browser for the portal's end-to-end tests: headless Chromium driven through
//! WebDriver (`chromedriver`, with the maintained `fantoccini` client), one browser and one
//! profile per test, against the test's real server.
//!
//! When a test fails, every screen it saw is saved as a PNG under
//! `target/tmp/portal/<test>/` (the test's output folder), with the failure's own screen last;
//! `PAYYMO_PORTAL_SCREENS=1` saves them for passing tests too.
//!
//! Chromium and ChromeDriver come from Debian (`apt-get install chromium chromium-driver`).
//! Without them these tests say so and pass, unless `PAYYMO_BROWSER_TESTS=required` (set by
//! `.ci/run`), where their absence fails.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::Mutex,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::support::TestApp;

const WAIT: Duration = Duration::from_secs(15);

pub struct Browser {
    client: Client,
    base: String,
    name: String,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
    _driver: Child,
    screens: Mutex<Vec<(String, Vec<u8>)>>,
}

fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| PathBuf::from(dir).join(program)).find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    /// A browser for the test `name` on `app`, or None (with a note) when this machine has no
    /// Chromium and browser tests are not required.
    pub async fn open(app: &TestApp, name: &str) -> Option<Browser> {
        let (Some(driver), Some(chromium)) =
            (find("chromedriver"), find("chromium").or_else(|| find("chromium-browser")))
        else {
            assert!(
                std::env::var("PAYYMO_BROWSER_TESTS").as_deref() != Ok("required"),
                "browser tests are required, but chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("SKIPPED {name}: no chromium/chromedriver on PATH (apt-get install chromium chromium-driver)");
            return None;
        };
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let downloads = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&webdriver).await {
                Ok(client) => break client,
                Err(error) if started.elapsed() > Duration::from_secs(30) => panic!("no WebDriver session: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Some(Browser {
            client,
            base: app.url(""),
            name: name.to_owned(),
            downloads,
            _profile: profile,
            _driver: child,
            screens: Mutex::new(Vec::new()),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens a portal route, e.g. `#/inbox`, and waits for the screen to have its heading.
    pub async fn goto(&self, route: &str) {
        self.client.goto(&format!("{}/app{route}", self.base)).await.unwrap();
        self.snap(route).await;
    }

    /// Keeps a screenshot of what the browser shows now, to save if the test fails.
    pub async fn snap(&self, label: &str) {
        if let Ok(png) = self.client.screenshot().await {
            self.screens.lock().unwrap().push((label.to_owned(), png));
        }
    }

    /// The first element matching `css`, once there is one.
    pub async fn wait_for(&self, css: &str) -> Element {
        match self.client.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(error) => self.fail(&format!("no {css} within {WAIT:?}: {error}")).await,
        }
    }

    /// Waits until the element `css` shows `text` somewhere in it.
    pub async fn wait_text(&self, css: &str, text: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.text().await.is_ok_and(|t| t.contains(text))
            {
                return element;
            }
            if started.elapsed() > WAIT {
                let seen = match self.client.find(Locator::Css(css)).await {
                    Ok(e) => e.text().await.unwrap_or_default(),
                    Err(_) => "(no such element)".into(),
                };
                self.fail(&format!("{css} never showed {text:?}; it shows {seen:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no element matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        let started = Instant::now();
        while self.client.find(Locator::Css(css)).await.is_ok() {
            if started.elapsed() > WAIT {
                self.fail(&format!("{css} is still there after {WAIT:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.wait_for(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        if let Err(error) = element.click().await {
            self.fail(&format!("cannot click {css}: {error}")).await;
        }
    }

    /// Types keys into whatever has the focus (the page's keyboard shortcuts).
    pub async fn keys(&self, keys: &str) {
        let body = self.client.find(Locator::Css("body")).await.unwrap();
        body.send_keys(keys).await.unwrap();
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Signs in through the form.
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.goto("").await;
        self.fill("#sign-in input[name=email]", email).await;
        self.fill("#sign-in input[name=password]", password).await;
        self.click("#sign-in button[type=submit]").await;
        self.wait_for("#sign-out").await;
        self.snap("signed in").await;
    }

    /// A file the browser downloaded, once it has finished.
    pub async fn downloaded(&self, suffix: &str) -> PathBuf {
        let started = Instant::now();
        loop {
            let done = std::fs::read_dir(self.downloads.path())
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().ends_with(suffix));
            if let Some(path) = done {
                return path;
            }
            if started.elapsed() > WAIT {
                self.fail(&format!("no {suffix} download within {WAIT:?}")).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves every screen seen so far and the current one, then fails the test with `message`.
    pub async fn fail(&self, message: &str) -> ! {
        self.snap("failure").await;
        let folder = self.save();
        panic!("{message} (screens saved in {})", folder.display());
    }

    /// Writes the screens seen so far to the test's output folder.
    fn save(&self) -> PathBuf {
        let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal").join(&self.name);
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        for (i, (label, png)) in self.screens.lock().unwrap().iter().enumerate() {
            let label: String = label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            std::fs::write(folder.join(format!("{i:02}-{label}.png")), png).unwrap();
        }
        folder
    }

    /// Asserts `condition`, saving the screens when it does not hold.
    pub async fn check(&self, condition: bool, message: &str) {
        if !condition {
            self.fail(message).await;
        }
    }

    /// Ends the session; with `PAYYMO_PORTAL_SCREENS=1`, saves its screens even on success.
    pub async fn close(self) {
        if std::env::var_os("PAYYMO_PORTAL_SCREENS").is_some() {
            self.snap("last").await;
            self.save();
        }
        let _ = self.client.close().await;
    }
}

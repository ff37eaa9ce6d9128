import { escapeHtml, htmlPage } from './html';

export interface CaFacts {
  readonly commonName: string;
  readonly fingerprint256: string;
  readonly notAfter: Date;
  /** Base URL of the admin listener as the reader reached it, e.g. http://gw.corp.example:9090. */
  readonly baseUrl: string;
}

function step(title: string, body: string): string {
  return `<h2>${escapeHtml(title)}</h2>\n${body}`;
}

function pre(lines: string): string {
  return `<pre>${escapeHtml(lines)}</pre>`;
}

/**
 * Step-by-step instructions to trust the gateway CA on the platforms and runtimes people use.
 * Served over the admin listener, which is plain HTTP: the page says to check the fingerprint
 * through another channel, because anyone on the path could swap both the file and the page.
 */
export function caInstallPage(ca: CaFacts): string {
  const pem = `${ca.baseUrl}/ca.pem`;
  const der = `${ca.baseUrl}/ca.der`;
  const body = [
    `<h1>Trust the tollgate CA</h1>`,
    `<p>This gateway inspects some HTTPS traffic: it presents certificates it issues itself from the CA below.
Devices and programs must trust this CA, or they will (correctly) refuse those connections.</p>`,
    `<table>
<tr><th>Name</th><td>${escapeHtml(ca.commonName)}</td></tr>
<tr><th>SHA-256 fingerprint</th><td><code id="fingerprint">${escapeHtml(ca.fingerprint256)}</code></td></tr>
<tr><th>Valid until</th><td>${escapeHtml(ca.notAfter.toISOString())}</td></tr>
<tr><th>Download</th><td><a href="/ca.pem">ca.pem</a> (PEM, Linux, macOS, Node, Python, Firefox) &middot; <a href="/ca.der">ca.der</a> (DER, Windows, Java, MDM) &middot; <a href="/ca.crt">ca.crt</a> (DER, Android)</td></tr>
</table>`,
    `<p class="note">This page is served over plain HTTP. Before trusting the file, compare its fingerprint with the one your
network team published through another channel (intranet, ticket, e-mail):</p>`,
    pre(`curl -fsS ${pem} -o tollgate-ca.pem
openssl x509 -in tollgate-ca.pem -noout -fingerprint -sha256`),
    step(
      'Windows',
      `<p>One machine (elevated prompt; <code>-user</code> instead for the current user only):</p>
${pre(`curl.exe -fsS ${der} -o tollgate-ca.cer
certutil -addstore -f Root tollgate-ca.cer
certutil -verifystore Root "${ca.commonName}"`)}
<p>A domain: Group Policy Management &rarr; edit a GPO linked to the computers &rarr; Computer Configuration &rarr; Policies &rarr;
Windows Settings &rarr; Security Settings &rarr; Public Key Policies &rarr; Trusted Root Certification Authorities &rarr;
Import&hellip; <code>tollgate-ca.cer</code>. Clients pick it up at the next policy refresh (<code>gpupdate /force</code>).
Chrome and Edge use the Windows store.</p>`,
    ),
    step(
      'macOS',
      `<p>One machine:</p>
${pre(`curl -fsS ${pem} -o tollgate-ca.pem
sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain tollgate-ca.pem`)}
<p>A fleet: add a <em>Certificate</em> payload (<code>com.apple.security.root</code>) holding <code>ca.der</code> to a
configuration profile and deploy it with your MDM; MDM-installed roots are trusted for TLS without further steps.
On iOS/iPadOS a manually installed profile also needs Settings &rarr; General &rarr; About &rarr; Certificate Trust Settings.</p>`,
    ),
    step(
      'Android',
      `<p>Android 11 and later cannot install a CA from a browser download prompt; it goes through Settings. Download
<a href="/ca.crt">ca.crt</a> on the device (<code>${escapeHtml(ca.baseUrl)}/ca.crt</code>), then Settings &rarr; Security &amp; privacy &rarr;
More security settings &rarr; Encryption &amp; credentials &rarr; Install a certificate &rarr; <em>CA certificate</em> &rarr; Install anyway,
and pick <code>tollgate-ca.crt</code> (menu names vary by vendor: search Settings for &ldquo;CA certificate&rdquo;). Android 10 and
earlier: Settings &rarr; Security &rarr; Install from storage. Check it under Encryption &amp; credentials &rarr; Trusted credentials &rarr; User.</p>
<p>Which apps trust it: Chrome, and browsers that use the system store, do. Apps built for Android 7 or later trust user-installed CAs
only when their network security configuration says so (<code>&lt;certificates src="user" /&gt;</code>), and most do not: they will
refuse inspected connections (pinning detection reports them). Splice the destinations such apps use. Firefox: Settings &rarr;
About Firefox, tap the logo five times, then Settings &rarr; Secret settings &rarr; <em>Use third party CA certificates</em>. A fleet:
push the CA with your MDM (Android Enterprise); the same app limits apply.</p>`,
    ),
    step(
      'Debian, Ubuntu',
      `${pre(`sudo curl -fsS ${pem} -o /usr/local/share/ca-certificates/tollgate-ca.crt
sudo update-ca-certificates`)}<p>The file name must end in <code>.crt</code>. This updates <code>/etc/ssl/certs/ca-certificates.crt</code>, used by curl, wget, OpenSSL and most programs.</p>`,
    ),
    step(
      'RHEL, Fedora, Rocky, Alma',
      pre(`sudo curl -fsS ${pem} -o /etc/pki/ca-trust/source/anchors/tollgate-ca.pem
sudo update-ca-trust`),
    ),
    step(
      'Firefox and other NSS programs',
      `<p>Firefox keeps its own store. Managed: in <code>policies.json</code> set
<code>"Certificates": {"ImportEnterpriseRoots": true, "Install": ["/path/to/tollgate-ca.pem"]}</code> (ImportEnterpriseRoots
makes Firefox on Windows and macOS use the system roots above). One profile, or Chromium's store on Linux, with NSS's
<code>certutil</code> (package <code>libnss3-tools</code>):</p>
${pre(`certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n tollgate -i tollgate-ca.pem        # Chromium on Linux
certutil -d sql:$HOME/.mozilla/firefox/PROFILE -A -t "C,," -n tollgate -i tollgate-ca.pem`)}`,
    ),
    step(
      'Java',
      `${pre(`keytool -importcert -cacerts -alias tollgate -file tollgate-ca.pem -storepass changeit -noprompt`)}
<p>Run it for each JDK/JRE on the machine (Java 8: <code>-keystore $JAVA_HOME/jre/lib/security/cacerts</code> instead of <code>-cacerts</code>).</p>`,
    ),
    step(
      'Node.js',
      `${pre(`export NODE_EXTRA_CA_CERTS=/path/to/tollgate-ca.pem`)}<p>Read once when the process starts; it adds to Node's bundled roots (Node does not use the system store by default).</p>`,
    ),
    step(
      'Python',
      `<p><code>requests</code> uses certifi's bundle, not the system's, and <code>REQUESTS_CA_BUNDLE</code> <em>replaces</em> that bundle: point it at the
system bundle after installing the CA system-wide (above), so public sites keep working:</p>
${pre(`export REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt     # Debian/Ubuntu
export REQUESTS_CA_BUNDLE=/etc/pki/tls/certs/ca-bundle.crt         # RHEL
export SSL_CERT_FILE=$REQUESTS_CA_BUNDLE                            # urllib, httpx, the ssl module`)}`,
    ),
    step('Check', `${pre(`curl -x http://PROXY:PORT -I https://an-inspected-site.example/`)}<p>No certificate error means the CA is trusted.</p>`),
  ].join('\n');
  return htmlPage('Trust the tollgate CA', body);
}

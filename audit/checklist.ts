// THE mapping from each audit check to the source-policy checklist line(s) it proves. Lines are
// quoted exactly as they stand in /work/shared/source-policies/ (a test checks every quote is there),
// so a reviewer can tick a policy checkbox by pointing at a passing check id.

/** RoboAgency (Humachine AI Studio) security policy. */
export const ROBOAGENCY = "000_c4e77d44db66c1a9.txt";
/** Story Portal Platform V2 security policy. */
export const STORY_PORTAL = "001_7b44c1e10be3224b.txt";

export interface PolicyLine {
    file: typeof ROBOAGENCY | typeof STORY_PORTAL;
    /** The checklist line, verbatim (leading/trailing whitespace aside). */
    line: string;
}

const R = (line: string): PolicyLine => ({ file: ROBOAGENCY, line });
const S = (line: string): PolicyLine => ({ file: STORY_PORTAL, line });

export const CHECKLIST: Record<string, PolicyLine[]> = {
    // ---- outside (from a second host) ----
    "out-ports": [
        R("- [ ] Firewall enabled (UFW)"),
        R("- [ ] Review firewall rules"),
        S("- [ ] Only L09 (Gateway) and L10 (UI) exposed externally"),
        S("- [ ] Firewall rules restrict access to ports 8001-8012"),
    ],
    "out-tls": [R("- [ ] HTTPS enforced with valid certificate"), S("- [ ] TLS/HTTPS enabled (Let's Encrypt or valid certificate)")],
    "out-https-redirect": [R("- [ ] HTTPS enforced with valid certificate")],
    "out-headers": [R("- [ ] Security headers configured"), R("- [ ] XSS protection enabled")],
    "out-caddy-admin": [S("- [ ] Only L09 (Gateway) and L10 (UI) exposed externally")],
    "out-ssh-auth": [R("- [ ] SSH hardened (key-only)")],
    "out-ssh-audit": [R("- [ ] SSH hardened (key-only)")],
    // ---- inside (over SSH) ----
    "in-sshd": [R("- [ ] SSH hardened (key-only)"), R("PermitRootLogin no"), R("PasswordAuthentication no"), R("MaxAuthTries 3")],
    "in-ufw": [R("- [ ] Firewall enabled (UFW)"), R("- [ ] Review firewall rules"), S("- [ ] Firewall rules restrict access to ports 8001-8012")],
    "in-docker-user": [S("- [ ] Firewall rules restrict access to ports 8001-8012"), S("- [ ] Internal Docker network isolated from public")],
    "in-intrusion": [R("- [ ] CrowdSec or fail2ban configured"), S("- [ ] Failed authentication attempts monitored"), S("- [ ] Unusual traffic patterns detected")],
    "in-upgrades": [R("- [ ] Apply security patches within 7 days"), S("- [ ] Security updates applied regularly")],
    "in-containers-inventory": [S("- [ ] Containers run as non-root user"), S("- [ ] Resource limits configured (CPU, memory)")],
    "in-container-user": [S("- [ ] Containers run as non-root user")],
    "in-container-readonly": [S("- [ ] Read-only root filesystems where possible")],
    "in-container-privileges": [S("- [ ] Containers run as non-root user")],
    "in-container-limits": [S("- [ ] Resource limits configured (CPU, memory)")],
    "in-container-networks": [
        S("- [ ] Internal Docker network isolated from public"),
        S("- [ ] Database accessible only from Docker network"),
        S("- [ ] Redis accessible only from Docker network"),
    ],
    "in-container-env": [
        R("- [ ] All secrets stored securely (not in code)"),
        S("- [ ] No secrets in docker-compose.yml or source code"),
        S("- [ ] Environment variables from Docker secrets or vault"),
    ],
    "in-postgres-tls": [S("- [ ] SSL/TLS connections enforced for PostgreSQL")],
    "in-redis-auth": [S("- [ ] Redis password configured (requirepass)")],
    "in-redis-commands": [S("- [ ] Dangerous commands disabled (FLUSHDB, FLUSHALL, KEYS)")],
    "in-app-isolation": [
        S("- [ ] Internal Docker network isolated from public"),
        S("- [ ] Database accessible only from Docker network"),
        S("- [ ] Redis accessible only from Docker network"),
    ],
    "in-secret-files": [R("- [ ] All secrets stored securely (not in code)"), S("- [ ] Environment variables from Docker secrets or vault")],
    "in-journald": [R("| Logs | 90 days | Automated deletion |"), S("- [ ] Security event logging enabled")],
    // The policy names CIS Benchmarks as its reference for the host; these controls are CIS and Lynis's.
    "in-os-baseline": [R("- [CIS Benchmarks](https://www.cisecurity.org/cis-benchmarks/)")],
    // A binary replaced behind dpkg's back (a rootkit's way in) is what package verification finds.
    "in-packages-intact": [R("- [CIS Benchmarks](https://www.cisecurity.org/cis-benchmarks/)")],
    // The CIS Docker Benchmark's host audit rules (1.1.3-1.1.18): who changed Docker, and when.
    "in-auditd": [R("- [CIS Benchmarks](https://www.cisecurity.org/cis-benchmarks/)"), S("- [ ] Security event logging enabled")],
    "in-log-retention": [R("| Logs | 90 days | Automated deletion |"), S("- [ ] Security event logging enabled")],
    // No policy line names kernel parameters; these are the ones the declared set serves: strict
    // reverse-path filtering, no source routing or redirects (spoofed or re-routed packets do not reach
    // the containers' bridges), and martian packets logged.
    "in-sysctl": [S("- [ ] Internal Docker network isolated from public"), S("- [ ] Security event logging enabled")],
    "in-backup": [
        R("- [ ] Automated backups configured"),
        R("| Backups | 1 year | Encrypted, then deleted |"),
        S("- [ ] Regular backups configured (daily minimum)"),
    ],
    "in-monitoring": [R("- [ ] Monitoring and alerting active"), S("- [ ] Failed authentication attempts monitored"), S("- [ ] Unusual traffic patterns detected")],
    // ---- attacks (--attack) ----
    "atk-ssh-bruteforce": [R("- [ ] CrowdSec or fail2ban configured"), S("- [ ] Failed authentication attempts monitored")],
    "atk-ssh-agent-keys": [R("- [ ] CrowdSec or fail2ban configured"), R("- [ ] SSH hardened (key-only)")],
    // The perimeter (target hcloud), seen from outside with UFW opened behind it.
    "atk-perimeter-ssh": [R("- [ ] Review firewall rules")],
    "atk-perimeter-port": [R("- [ ] Review firewall rules"), S("- [ ] Only L09 (Gateway) and L10 (UI) exposed externally"), S("- [ ] Firewall rules restrict access to ports 8001-8012")],
    "atk-http-burst": [R("- [ ] Rate limiting configured"), S("- [ ] Rate limiting enabled on L09 API Gateway"), S("- [ ] Unusual traffic patterns detected")],
};

export function policyLines(id: string): PolicyLine[] {
    const lines = CHECKLIST[id];
    if (!lines) throw new Error(`audit: check ${id} has no entry in audit/checklist.ts`);
    return lines;
}

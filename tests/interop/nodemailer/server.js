'use strict';
// nodemailer smtp-server harness for smtpkit's SASL interop tests; started by
// tests/interop/nodemailer.sh. Two listeners on HOST, both on free ports:
//   submission  - plain SMTP + STARTTLS (smtp-server advertises AUTH before
//                 STARTTLS too and answers it with 538; left as is)
//   submissions - implicit TLS
// Accepts alice / "correct horse" for PLAIN, LOGIN, CRAM-MD5, and XOAUTH2 user
// alice with token "good-token". Any other XOAUTH2 token gets Google's answer:
// a 334 challenge with base64 {"status":"401",...}, then 535 5.7.8.
// Each accepted message is stored as one file in CAPTURE_DIR (temp + rename).
// Once both ports listen, the ports are written to PORTS_FILE (temp + rename).
//
// usage: node server.js --host H --cert PEM --key PEM --capture-dir DIR
//          --tmp-dir DIR --log FILE --ports-file FILE

const fs = require('fs');
const path = require('path');
const util = require('util');
const { SMTPServer } = require('smtp-server');

const USER = 'alice';
const PASSWORD = 'correct horse';
const GOOD_TOKEN = 'good-token';
const GOOGLE_401 = { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' };
const SIZE_LIMIT = 50 * 1024 * 1024;

function parseArgs(argv) {
    const opts = {};
    for (let i = 0; i < argv.length; i += 2) {
        if (!argv[i].startsWith('--') || argv[i + 1] === undefined) {
            throw new Error('bad argument: ' + argv[i]);
        }
        opts[argv[i].slice(2)] = argv[i + 1];
    }
    for (const key of ['host', 'cert', 'key', 'capture-dir', 'tmp-dir', 'log', 'ports-file']) {
        if (!opts[key]) {
            throw new Error('missing --' + key);
        }
    }
    return opts;
}

const opts = parseArgs(process.argv.slice(2));

// one line per entry: multi-line replies (EHLO) are joined with " | "
function log(...args) {
    const line = util.format(...args).replace(/\r?\n/g, ' | ');
    fs.appendFileSync(opts.log, `${new Date().toISOString()} ${line}\n`);
}

// bunyan-style logger for smtp-server; its protocol trace redacts AUTH data
function makeLogger(label) {
    const write = level => (entry, message, ...args) =>
        log('%s %s [%s] %s', label, level, (entry && entry.cid) || '-', util.format(message, ...args));
    const logger = {};
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) {
        logger[level] = write(level);
    }
    return logger;
}

function credentialsOk(auth) {
    if (auth.username !== USER) {
        return false;
    }
    switch (auth.method) {
        case 'PLAIN':
        case 'LOGIN':
            return auth.password === PASSWORD;
        case 'CRAM-MD5':
            return auth.validatePassword(PASSWORD);
        case 'XOAUTH2':
            return auth.accessToken === GOOD_TOKEN;
        default:
            return false;
    }
}

function onAuth(auth, session, callback) {
    const ok = credentialsOk(auth);
    log('auth mechanism=%s user=%j result=%s session=%s', auth.method, auth.username, ok ? 'accepted' : 'rejected', session.id);
    if (ok) {
        return callback(null, { user: auth.username });
    }
    if (auth.method === 'XOAUTH2') {
        // smtp-server sends 334 base64(JSON of data), waits for the client's
        // empty line, then answers 535 (5.7.8) "Username and Password not accepted"
        return callback(null, { data: GOOGLE_401 });
    }
    return callback(null, { message: 'Authentication credentials invalid', responseCode: 535 });
}

let sequence = 0;

function storeMessage(data, session) {
    sequence += 1;
    const name = `${Date.now()}-${String(sequence).padStart(6, '0')}-${session.id}.eml`;
    const tmp = path.join(opts['tmp-dir'], name);
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, path.join(opts['capture-dir'], name));
    return name;
}

function onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', chunk => chunks.push(chunk));
    stream.on('error', err => callback(err));
    stream.on('end', () => {
        if (stream.sizeExceeded) {
            const err = new Error('Message exceeds fixed maximum message size');
            err.responseCode = 552;
            return callback(err);
        }
        const name = storeMessage(Buffer.concat(chunks), session);
        log('stored file=%s bytes=%d user=%s from=%s to=%s', name, stream.byteLength,
            session.user, session.envelope.mailFrom && session.envelope.mailFrom.address,
            session.envelope.rcptTo.map(r => r.address).join(','));
        return callback(null, 'Message stored as ' + name);
    });
}

function makeServer(label, secure) {
    const server = new SMTPServer({
        secure,
        name: 'nodemailer.smtpkit.test',
        banner: 'smtpkit nodemailer smtp-server harness',
        key: fs.readFileSync(opts.key),
        cert: fs.readFileSync(opts.cert),
        authMethods: ['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2'],
        hideENHANCEDSTATUSCODES: false, // so failures read "535 5.7.8 ..." like Gmail
        size: SIZE_LIMIT,
        disableReverseLookup: true, // loopback only; no DNS

        logger: makeLogger(label),
        onAuth,
        onData
    });
    server.on('error', err => log('%s server error: %s', label, err.message));
    return server;
}

function listen(server) {
    return new Promise((resolve, reject) => {
        server.server.once('error', reject);
        server.listen(0, opts.host, () => resolve(server.server.address().port));
    });
}

function writePortsFile(submission, submissions) {
    const tmp = opts['ports-file'] + '.tmp';
    fs.writeFileSync(tmp, `SUBMISSION_PORT=${submission}\nSUBMISSIONS_PORT=${submissions}\n`);
    fs.renameSync(tmp, opts['ports-file']);
}

async function main() {
    const servers = [makeServer('submission', false), makeServer('submissions', true)];
    const [submission, submissions] = [await listen(servers[0]), await listen(servers[1])];
    writePortsFile(submission, submissions);
    log('listening host=%s submission=%d submissions=%d pid=%d', opts.host, submission, submissions, process.pid);
    const shutdown = signal => {
        log('%s received, shutting down', signal);
        servers.forEach(s => s.close());
        setTimeout(() => process.exit(0), 2000).unref();
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
}

main().catch(err => {
    log('startup failed: %s', err.stack || err);
    process.exit(1);
});

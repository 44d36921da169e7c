/* doctor.h — internal helpers of the doctor (doctor.c); not installed.
 *
 * The public side is the "probing and diagnosis" section of smtpkit.h.
 * Two rules of evidence beyond a single reply live in classify.c, the one
 * place causes are decided, and are declared here. */
#ifndef SMTPKIT_DOCTOR_H
#define SMTPKIT_DOCTOR_H

#include "internal.h"

/* ---- classify.c: doctor's evidence rules ---- */

/* Who really answered: the banner (ctx->banner), the EHLO reply's first
 * line and the certificate's names carry fingerprints of other servers
 * only, while the user expects the provider ctx->provider (else the one of
 * ctx->host). Then err becomes smtp_intercepted and *who (if not NULL) the
 * server recognised; returns true. */
bool sk_classify_answered_by(smtpkit_error *err, const sk_context *ctx,
                             const char *ehlo, const char *cert_names,
                             const char **who);

/* An MX (receiving) or relay host of a known provider used for
 * submission: err becomes wrong_endpoint, *provider (if not NULL) that
 * provider; returns true. */
bool sk_classify_endpoint(smtpkit_error *err, const char *host,
                          const char **provider);

#endif

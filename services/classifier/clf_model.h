/*
 * clf_model: the classifier's statistical model: training, the model file,
 * loading and prediction.
 *
 * A model holds up to three heads (category, priority, sentiment) over one
 * set of hashed n-gram features (clf_text). A text becomes a TF-IDF vector
 * (sublinear tf 1 + ln tf, the idf stored in the model, L2-normalised; buckets
 * never seen in training are dropped, as a fitted vocabulary would), and each
 * head is a multinomial logistic regression (softmax) on it, trained by
 * averaged SGD on the class-weighted log loss with an L2 penalty on every
 * weight, over shuffled epochs from a fixed seed, so the same data and
 * options give the same file. Its probabilities are what the classifier uses
 * to send low-confidence cases to triage.
 *
 * The model file (little-endian; format 1; every section 64-byte aligned):
 *   header     128 bytes: magic "PLAINTM1", format version, total size,
 *              feature options (clf_text_opts_t), rows, columns, labels per
 *              head, training texts, section offsets
 *   labels     each head's label names, NUL-terminated, sorted (bytewise)
 *   rowmap     uint32 per hash bucket: its row, or 0xFFFFFFFF (never seen)
 *   idf        float32 per row
 *   bias       float32 per column (the heads' classes side by side)
 *   weights    float32 [rows][columns]
 *   checksum   uint64 over every byte before it
 * It is written to a temporary file in the same directory, synced and
 * renamed over the target, so a reader sees the old model or the new one.
 * Loading maps the file read-only and checks all of it (sizes, offsets,
 * labels, rows, finite numbers, checksum) before use.
 *
 * Prediction reads the model only, so one loaded model may be shared by any
 * number of threads; each thread keeps one scratch buffer (clf_text's), grown
 * to the largest text it has seen, and allocates nothing else per call.
 */
#ifndef CLF_MODEL_H
#define CLF_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "clf_text.h"
#include "pl_err.h"

typedef struct clf_model clf_model_t;
typedef struct clf_trainer clf_trainer_t;

typedef enum {
    CLF_HEAD_CATEGORY = 0,
    CLF_HEAD_PRIORITY = 1,
    CLF_HEAD_SENTIMENT = 2,
    CLF_NHEADS = 3
} clf_head_t;

#define CLF_MODEL_MAGIC "PLAINTM1"
#define CLF_MODEL_VERSION 1
#define CLF_LABELS_MAX 256   /* labels per head */
#define CLF_LABEL_MAX_BYTES 64

typedef struct clf_guess {
    const char *label; /* borrowed from the model; NULL when the model has no such head */
    float prob;        /* 0..1, the winning class's probability */
    float margin;      /* prob of the best minus prob of the second best */
} clf_guess_t;

/* "category", "priority", "sentiment" (static storage). */
const char *clf_head_name(clf_head_t head);

/* ---- using a model ---- */

/* Loads and validates path; NULL with err (naming path and what is wrong,
 * with a hint) on failure: missing, truncated, corrupt or foreign files. */
clf_model_t *clf_model_load(const char *path, pl_err_t *err);
/* NULL-safe; sets *model_p to NULL. */
void clf_model_destroy(clf_model_t **model_p);

/* Labels of a head (borrowed, sorted); returns the count (0 = head absent,
 * *labels then NULL). */
size_t clf_model_labels(const clf_model_t *m, clf_head_t head, const char *const **labels);

/* text: UTF-8 (e.g. subject + "\n" + body), len bytes (only the first
 * CLF_TEXT_MAX_BYTES are read). Fills out[CLF_NHEADS]; an absent head gets
 * {NULL, 0, 0}; a head with one label always gives it with prob 1. Uses the
 * calling thread's scratch (see clf_model_thread_cleanup). */
void clf_model_predict(const clf_model_t *m, const char *text, size_t len,
                       clf_guess_t out[CLF_NHEADS]);
/* The same with a caller-owned scratch (one per thread). */
void clf_model_predict_scratch(const clf_model_t *m, clf_text_scratch_t *scratch,
                               const char *text, size_t len, clf_guess_t out[CLF_NHEADS]);
/* Per-class probabilities of one head into probs[nlabels] (label order of
 * clf_model_labels). Returns nlabels, 0 when the head is absent. */
size_t clf_model_predict_probs(const clf_model_t *m, clf_head_t head, const char *text,
                               size_t len, float *probs);
/* Frees the calling thread's prediction scratch (it is made again when
 * needed). For threads that end before the process does. */
void clf_model_thread_cleanup(void);

typedef struct clf_model_info {
    clf_text_opts_t text; /* the feature options it was trained with */
    uint32_t rows;        /* buckets with weights */
    uint32_t texts;       /* training texts (the idf's N) */
    size_t file_bytes;
} clf_model_info_t;
void clf_model_info(const clf_model_t *m, clf_model_info_t *info);

/* ---- training ---- */

typedef struct clf_train_opts {
    clf_text_opts_t text;
    unsigned epochs;     /* passes over the data, 1..1000 */
    uint64_t seed;       /* shuffling */
    float learning_rate; /* SGD's first step size (it falls as lr / (1 + lr l2 t)^0.75), > 0 */
    float l2;            /* L2 penalty per update, on every weight, >= 0 */
    float balance;       /* class weights (n / (k * n_class))^balance: 0 none .. 1 balanced */
    unsigned min_df;     /* a bucket in fewer training texts gets no row; >= 1 */
} clf_train_opts_t;

/* The defaults plaintctl train uses. */
void clf_train_opts_default(clf_train_opts_t *opts);

/* NULL with err (path names the option, e.g. "bits") when opts are out of range. */
clf_trainer_t *clf_trainer_new(const clf_train_opts_t *opts, pl_err_t *err);
/* NULL-safe; sets *trainer_p to NULL. */
void clf_trainer_destroy(clf_trainer_t **trainer_p);

/* Adds one training text; labels[h] is the text's label for head h or NULL
 * (the text then does not train that head, though it counts for the idf).
 * Labels are copied. Returns 0, or PL_EINVAL with err (path "category" ...)
 * when no head has a label, a label is empty or over CLF_LABEL_MAX_BYTES
 * bytes or not valid UTF-8, or a head would get more than CLF_LABELS_MAX
 * labels. The trainer is unchanged on error. */
int clf_trainer_add(clf_trainer_t *t, const char *text, size_t len,
                    const char *const labels[CLF_NHEADS], pl_err_t *err);

/* Labels of head h seen so far, in first-seen order (borrowed until the next
 * add), and in counts[i] (borrowed) how many texts carry each. Returns the
 * count. */
size_t clf_trainer_labels(const clf_trainer_t *t, clf_head_t head, const char *const **labels,
                          const size_t **counts);
/* Texts added so far. */
size_t clf_trainer_texts(const clf_trainer_t *t);

/* Trains every head that has labelled texts and writes the model to path
 * (atomically). Returns 0, PL_EINVAL when no text was added, or PL_EIO when
 * the file cannot be written, with err naming path. Only once: afterwards
 * add and finish give PL_ECONFLICT (labels and counts stay readable). */
int clf_trainer_finish(clf_trainer_t *t, const char *path, pl_err_t *err);

#endif

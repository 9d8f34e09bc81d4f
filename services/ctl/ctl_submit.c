/*
 * plaintctl submit: sends one complaint.submit over a REQ socket and prints
 * the reply. Input is either a whole envelope (has "type") or just the data
 * object, which gets an envelope with source "plaintctl".
 */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "pl_alloc.h"
#include "pl_bus.h"
#include "pl_json.h"
#include "pl_msg.h"

#define INPUT_MAX (8 * 1024 * 1024)
#define REPLY_TIMEOUT_MS 10000

/* Returns the text to send: the input as is, or wrapped in an envelope. */
static char *message_text(char *input, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(input, len);
    if (!root || !cJSON_IsObject(root) || cJSON_GetObjectItemCaseSensitive(root, "type")) {
        cJSON_Delete(root);
        return pl_strndup(input, len); /* sent as is: intake explains what is wrong */
    }
    cJSON *msg = pl_msg_new(PL_MSG_SUBMIT, "plaintctl", root);
    char *text = pl_json_print(msg);
    cJSON_Delete(msg);
    return text;
}

static int exchange(const char *text, char *reply, size_t reply_size, int *reply_len)
{
    void *ctx = zmq_ctx_new();
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int timeout = REPLY_TIMEOUT_MS, linger = 0;
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    char endpoint[512];
    int rc = zmq_connect(req, pl_bus_connect_address(ctl_cfg.submit_endpoint, endpoint,
                                                     sizeof endpoint));
    if (rc == 0)
        rc = zmq_send(req, text, strlen(text), 0) < 0 ? -1 : 0;
    if (rc == 0)
        *reply_len = zmq_recv(req, reply, reply_size - 1, 0);
    zmq_close(req);
    zmq_ctx_term(ctx);
    return rc == 0 && *reply_len >= 0 ? 0 : -1;
}

int ctl_submit(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "-";
    size_t len = 0;
    char *input = ctl_read_file(path, INPUT_MAX, &len);
    if (!input)
        return CTL_EXIT_FAIL;
    char *text = message_text(input, len);
    pl_free(input);
    size_t reply_size = 1024 * 1024;
    char *reply = pl_malloc(reply_size);
    int reply_len = 0;
    int rc = exchange(text, reply, reply_size, &reply_len);
    pl_free(text);
    if (rc < 0) {
        ctl_fail("no reply from intake within 10 s",
                 "Check that plaint-intake runs and PLAINT_SUBMIT_ENDPOINT points at it.");
        pl_free(reply);
        return CTL_EXIT_UNAVAILABLE;
    }
    if ((size_t)reply_len >= reply_size)
        reply_len = (int)reply_size - 1;
    reply[reply_len] = '\0';
    printf("%s\n", reply);
    int status = strstr(reply, "\"type\":\"complaint.accepted\"") ? CTL_EXIT_OK : CTL_EXIT_FAIL;
    pl_free(reply);
    return status;
}

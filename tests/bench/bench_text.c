/*
 * bench_text: benchmark bodies from hand-written sentences (see bench_text.h).
 */
#include "bench_text.h"

#include <string.h>

static const char *const zh[] = {
    "我在贵店购买的电热水壶使用不到一周就出现漏水现象，底座周围全是水。",
    "快递显示已签收，但我根本没有收到包裹，联系快递员也一直无人接听。",
    "客服人员态度非常恶劣，不但不解决问题，还挂断了我的电话。",
    "订单金额被重复扣款两次，银行流水清楚显示了两笔相同的交易。",
    "维修点说零件需要等一个月，可是保修期内的产品为什么要等这么久？",
    "收到的衣服尺码与订单不符，申请换货已经过去十天仍然没有回复。",
    "外卖送达时已经洒了一半，餐盒破损，汤汁流得到处都是。",
    "充电器在使用过程中突然发烫冒烟，差点引起火灾，非常危险。",
    "会员积分无故清零，客服说是系统原因，却无法给出任何解释。",
    "门店店员私自更改了价格标签，结账时比标价贵了将近一百元。",
    "我要求全额退款并赔偿相应的损失，否则将向消费者协会投诉。",
    "希望贵公司能尽快给出处理方案，并告知具体的处理时间。",
};

static const char *const en[] = {
    "The blender I bought last month stopped working after three uses and now smells of burning. ",
    "My parcel was marked as delivered on Tuesday, but nothing arrived and the courier does not answer. ",
    "The agent on the hotline was rude, refused to give his name and ended the call while I spoke. ",
    "I was charged twice for the same order; my bank statement shows two identical payments. ",
    "The repair centre says the spare part will take six weeks although the unit is under warranty. ",
    "The jacket I received is two sizes larger than the one I ordered, and the exchange request is ignored. ",
    "The food arrived cold and half of the soup had leaked through a broken lid into the bag. ",
    "The phone charger became very hot and started to smoke on my desk; it could have caused a fire. ",
    "All my loyalty points disappeared overnight and nobody can tell me why. ",
    "The price at the till was higher than the shelf label and the store refused to correct it. ",
    "I expect a full refund and compensation for my costs, or I will contact the consumer regulator. ",
    "Please tell me what you will do about this and by when I will hear back from you. ",
};

size_t bench_text_body(char *buf, size_t size, size_t target_bytes, unsigned seed)
{
    const char *const *set = (seed & 1) ? en : zh;
    size_t count = 12, len = 0;
    unsigned x = seed * 2654435761u + 1;
    while (len < target_bytes) {
        x = x * 1103515245u + 12345u;
        const char *s = set[(x >> 8) % count];
        size_t n = strlen(s);
        if (len + n + 1 > size)
            break;
        memcpy(buf + len, s, n);
        len += n;
    }
    buf[len] = '\0';
    return len;
}

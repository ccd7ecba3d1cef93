/*
 * conversa seed --scale - generates realistic data at scale for benchmarks and EXPLAIN
 * tests: companies 'scale-00001'... with 5 users each, and contacts, conversations,
 * messages and notifications shared out over the companies by Zipf-like weights
 * (1/rank^1.2), so a few tenants hold most rows, as in production.
 *
 * Why it is fast: every table is filled by set-based INSERT ... SELECT over
 * generate_series, about 20 statements per big table (one per progress step), and no
 * row is computed in C. Rows never look each other up: every random choice is a hash
 * of the row's global number (hashint8extended), so a message recomputes its
 * conversation's status, updated_at and last message from the conversation's number,
 * with the same SQL helper the conversation itself was built with. Rows also come out
 * in the order of their indexes, which is what keeps a load much larger than
 * shared_buffers from thrashing: contacts' phone numbers and conversations' updated_at
 * rise with their number within a company, a conversation's contact is the one at the
 * same relative place (10% go back to an earlier contact), messages are written
 * conversation by conversation in time order and notifications user by user, newest
 * first. What remains per row is the foreign-key checks, which stay on (nothing here
 * needs a superuser). Contacts and conversations get explicit ids from a block
 * reserved on their identity sequences (a short transaction holding EXCLUSIVE locks,
 * so no concurrent insert can take an id of the block); messages and notifications
 * get theirs from the sequence as usual.
 *
 * Per company (plan in the temporary table scale_plan), rows are numbered globally:
 * company rank r owns rows o_x+1 .. o_x+n_x of table x. Every company gets at least
 * one contact, conversation and notification; every conversation gets at least one
 * message, its newest, which is the conversation's last_message_at and preview.
 *
 * Contract: everything is written in one transaction (all or nothing), under a session
 * advisory lock. When companies with slug 'scale-%' exist, nothing is done unless
 * --replace, which deletes them (children first, then the companies, whose delete
 * cascades to the rest) in that same transaction. The counter tables of migration
 * 0002 follow by their statement-level triggers. VACUUM (ANALYZE) runs after the commit:
 * a freshly loaded table is otherwise vacuumed by autovacuum later, a read of every
 * page that dirties them all (hint bits, visibility map) and writes them back, on the
 * same cores and disk as whatever is measured next (it held the dashboard bench's p99
 * at 300-485 ms while it ran on the 10 million messages).
 * Exit status: 0 done or already there, 1 database failure, 2 bad flags.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "store/migrate.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* An arbitrary constant, distinct from the migration lock's. */
#define SCALE_LOCK_KEY "7311920548"
/* Progress steps (statements) per big table. */
#define SCALE_CHUNKS 20
#define SCALE_BAR    20

typedef struct scale_opts {
    long long companies;
    long long contacts;
    long long conversations;
    long long messages;
    long long notifications;
    int replace;
} scale_opts_t;

static const struct scale_flag {
    const char *name;
    size_t offset;
    long long def;
    long long max;
} scale_flags[] = {
    {"--companies", offsetof(scale_opts_t, companies), 1000, 99999},
    {"--contacts", offsetof(scale_opts_t, contacts), 1000000, 100000000},
    {"--conversations", offsetof(scale_opts_t, conversations), 1000000, 100000000},
    {"--messages", offsetof(scale_opts_t, messages), 10000000, 1000000000},
    {"--notifications", offsetof(scale_opts_t, notifications), 2000000, 100000000},
};
#define SCALE_NFLAGS (sizeof(scale_flags) / sizeof(scale_flags[0]))

/* ---- SQL ------------------------------------------------------------------------------
 * Helpers in pg_temp (gone with the session). They are plain SQL expressions, so the
 * planner inlines them: rows pay no function calls. h is 64 hash bits, s picks which. */
static const char scale_sql_helpers[] =
    "CREATE FUNCTION pg_temp.scale_bits(h bigint, s int) RETURNS bigint LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT (h >> s) & 65535 $$;"
    "CREATE FUNCTION pg_temp.scale_pct(h bigint, s int) RETURNS bigint LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT ((h >> s) & 65535) % 100 $$;"
    /* a fraction in (0, 1] */
    "CREATE FUNCTION pg_temp.scale_unit(h bigint, s int) RETURNS float8 LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT (((h >> s) & 16777215) + 1)::float8 / 16777216 $$;"
    "CREATE FUNCTION pg_temp.scale_pick(a text[], h bigint, s int) RETURNS text LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT a[1 + ((h >> s) & 65535) % cardinality(a)] $$;"
    /* the same instant in every statement of the transaction; seconds, no calendar */
    "CREATE FUNCTION pg_temp.scale_ago(secs float8) RETURNS timestamptz LANGUAGE sql STABLE"
    " AS $$ SELECT date_trunc('second', now()) - interval '1 second' * secs $$;"

    "CREATE FUNCTION pg_temp.scale_first_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY["
    "'Ana','Beatriz','Bruno','Camila','Carlos','Daniel','Eduardo','Fernanda','Gabriel','Gabriela','Helena','Igor',"
    "'Isabela','João','Juliana','Larissa','Lucas','Luiza','Marcos','Mariana','Mateus','Natália','Paulo','Pedro',"
    "'Rafael','Renata','Ricardo','Rodrigo','Sofia','Thiago','Valentina','Vinícius','Laura','Diego','Carmen','José',"
    "'María','Sebastián','Emily','James','Priya','Arjun','Olivia','Miguel','Alice','Heitor','Manuela','Enzo'] $$;"
    "CREATE FUNCTION pg_temp.scale_last_names() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY["
    "'Silva','Santos','Oliveira','Souza','Rodrigues','Ferreira','Alves','Pereira','Lima','Gomes','Costa','Ribeiro',"
    "'Martins','Carvalho','Almeida','Lopes','Soares','Fernandes','Vieira','Barbosa','Rocha','Dias','Nascimento',"
    "'Andrade','Moreira','Nunes','Marques','Machado','Mendes','Freitas','Cardoso','Ramos','Gonçalves','Santana',"
    "'Teixeira','García','Hernández','López','Martínez','Smith','Johnson','Patel','Sharma'] $$;"
    "CREATE FUNCTION pg_temp.scale_inbound() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY["
    "'Olá, boa tarde! Meu pedido ainda não chegou.','Bom dia, vocês têm esse produto em estoque?',"
    "'Qual o prazo de entrega para o meu CEP?','Preciso da segunda via do boleto.','Consigo parcelar no cartão?',"
    "'Recebi o produto com defeito, como faço a troca?','Qual o horário de funcionamento no sábado?',"
    "'Obrigado pelo retorno!','Ok, fico no aguardo.','Pode me enviar o código de rastreio?',"
    "'Quero cancelar meu pedido.','O pagamento via Pix já foi feito, segue o comprovante.',"
    "'Vocês entregam no interior?','Perfeito, muito obrigada!','Ainda não recebi o e-mail de confirmação.',"
    "'Tem desconto para pagamento à vista?','Oi! Vi o anúncio no Instagram e queria mais informações.',"
    "'Meu cupom não está funcionando.','Posso retirar na loja?','Boa noite, alguém pode me ajudar?'] $$;"
    "CREATE FUNCTION pg_temp.scale_outbound() RETURNS text[] LANGUAGE sql IMMUTABLE AS $$ SELECT ARRAY["
    "'Olá! Obrigado pelo contato. Em instantes um de nossos atendentes vai falar com você.',"
    "'Bom dia! Vou verificar o status do seu pedido agora mesmo.',"
    "'Pode me confirmar o número do pedido, por favor?',"
    "'Seu pedido saiu para entrega e deve chegar até as 18h.',"
    "'Enviei a segunda via para o seu e-mail cadastrado.','Sim, parcelamos em até 10x sem juros no cartão.',"
    "'A troca é gratuita: basta gerar a etiqueta de devolução no nosso site.',"
    "'Aos sábados abrimos das 9h às 14h.','Por nada! Qualquer dúvida é só chamar.',"
    "'O código de rastreio é BR123456789BR.',"
    "'Seu cancelamento foi confirmado e o estorno aparece em até duas faturas.',"
    "'Recebemos o comprovante, obrigado! Seu pedido já está em separação.',"
    "'Entregamos em todo o Brasil; o frete é calculado no carrinho.','Temos sim, nas cores preta e prata.',"
    "'Abrimos uma solicitação com o financeiro e retornamos em até 48h.',"
    "'O cupom vale para compras acima de R$ 150.',"
    "'Pode retirar na loja a partir de amanhã, com documento com foto.',"
    "'Conseguiu resolver? Posso ajudar em algo mais?','Vou transferir você para o setor responsável.',"
    "'Estamos encerrando este atendimento. Avalie nossa conversa!'] $$;"

    /* Contact k (0-based) of a company's n, global number g: the company's country
     * code, an area code rising with k, then 9 and g's last 8 digits. Unique, and in
     * the order of k, so the phone indexes are appended to. */
    "CREATE FUNCTION pg_temp.scale_contact_phone(cc text, k bigint, n bigint, g bigint) RETURNS text"
    " LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT cc || (11 + k * 89 / n)::text || '9' || lpad((g % 100000000)::text, 8, '0') $$;"
    /* hashes hk (salt 11) and hk2 (salt 12) of the contact's number */
    "CREATE FUNCTION pg_temp.scale_contact_name(hk bigint, hk2 bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$"
    " SELECT CASE WHEN pg_temp.scale_pct(hk, 32) < 4 THEN NULL"
    "  ELSE pg_temp.scale_pick(pg_temp.scale_first_names(), hk2, 0) || ' '"
    "   || pg_temp.scale_pick(pg_temp.scale_last_names(), hk2, 16)"
    "   || CASE WHEN pg_temp.scale_pct(hk, 32) < 30"
    "      THEN ' ' || pg_temp.scale_pick(pg_temp.scale_last_names(), hk2, 32) ELSE '' END END $$;"

    /* Conversation k (0-based) of a company's v, with hashes hc (salt 31), hc2 (salt 32)
     * and hc3 (salt 33) of its number. Updated within the last 180 days, later for a
     * larger k, recent ones likelier; created 1 minute to 14 days before that. */
    "CREATE FUNCTION pg_temp.scale_conv_updated(k bigint, v bigint, hc bigint) RETURNS timestamptz"
    " LANGUAGE sql STABLE"
    " AS $$ SELECT pg_temp.scale_ago(15552000 * power((v - k - pg_temp.scale_unit(hc, 0)) / v, 2)) $$;"
    "CREATE FUNCTION pg_temp.scale_conv_span(hc bigint) RETURNS interval LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT interval '1 second' * (60 + 1209600 * power(pg_temp.scale_unit(hc, 24), 3)) $$;"
    "CREATE FUNCTION pg_temp.scale_conv_status(hc bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$"
    " SELECT CASE WHEN pg_temp.scale_pct(hc, 48) < 50 THEN 'resolved'"
    "  WHEN pg_temp.scale_pct(hc, 48) < 85 THEN 'open' ELSE 'pending' END $$;"
    "CREATE FUNCTION pg_temp.scale_conv_last_inbound(hc2 bigint) RETURNS boolean LANGUAGE sql IMMUTABLE"
    " AS $$ SELECT pg_temp.scale_pct(hc2, 0) < 60 $$;"
    "CREATE FUNCTION pg_temp.scale_conv_last_body(hc2 bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$"
    " SELECT CASE WHEN pg_temp.scale_pct(hc2, 0) < 60 THEN pg_temp.scale_pick(pg_temp.scale_inbound(), hc2, 16)"
    "  ELSE pg_temp.scale_pick(pg_temp.scale_outbound(), hc2, 16) END $$;"
    /* Its contact (0-based, of n): the one at the same relative place, or for 10% of
     * conversations a returning customer from before it. */
    "CREATE FUNCTION pg_temp.scale_conv_contact(k bigint, v bigint, n bigint, hc3 bigint) RETURNS bigint"
    " LANGUAGE sql IMMUTABLE AS $$"
    " SELECT CASE WHEN pg_temp.scale_pct(hc3, 32) < 10 THEN (hc3 & 4294967295) % (k * n / v + 1)"
    "  ELSE k * n / v END $$;"
    /* Messages of the company before conversation k, of e extra ones beyond one per
     * conversation: the extra ones fall on conversation k with a density like
     * 1/sqrt(k), so the first ones hold hundreds or thousands; the difference between
     * k + 1 and k is conversation k's count, and the sum over the company is exact. */
    "CREATE FUNCTION pg_temp.scale_msgs_before(k bigint, v bigint, e bigint) RETURNS bigint"
    " LANGUAGE sql IMMUTABLE AS $$ SELECT k + floor(e * sqrt(k::float8 / v))::bigint $$;";

/* The rows of table x numbered $1 .. $2, each with its company's plan: p.*, g. */
#define SCALE_RANGE(x)                                                                                                 \
    " FROM scale_plan p CROSS JOIN LATERAL generate_series(greatest(p.o_" x " + 1, $1::bigint),"                       \
    " least(p.o_" x " + p.n_" x ", $2::bigint)) AS g"                                                                  \
    " WHERE p.o_" x " < $2::bigint AND p.o_" x " + p.n_" x " >= $1::bigint"

/* $1 companies, $2 contacts, $3 conversations, $4 messages, $5 notifications. Each
 * company gets its minimum plus floor(its weight * the rest); rank 1 also takes what
 * rounding left over. Messages: one per conversation, plus a share of the others.
 * A company's contacts share a country code (most often Brazil's). */
static const char scale_sql_plan[] =
    "CREATE TEMP TABLE scale_plan AS"
    " WITH w AS (SELECT r, power(r, -1.2) / sum(power(r, -1.2)) OVER () AS w FROM generate_series(1, $1::int) AS r),"
    " f AS (SELECT r, 1 + floor(($2::bigint - $1::int) * w)::bigint AS ct,"
    "  1 + floor(($3::bigint - $1::int) * w)::bigint AS cv,"
    "  floor(($4::bigint - $3::bigint) * w)::bigint AS mx,"
    "  1 + floor(($5::bigint - $1::int) * w)::bigint AS nt FROM w),"
    " n AS (SELECT r,"
    "  CASE WHEN r = 1 THEN $2::bigint - sum(ct) OVER () + ct ELSE ct END AS ct,"
    "  CASE WHEN r = 1 THEN $3::bigint - sum(cv) OVER () + cv ELSE cv END AS cv,"
    "  CASE WHEN r = 1 THEN $4::bigint - $3::bigint - sum(mx) OVER () + mx ELSE mx END AS mx,"
    "  CASE WHEN r = 1 THEN $5::bigint - sum(nt) OVER () + nt ELSE nt END AS nt FROM f),"
    " m AS (SELECT r, ct::bigint AS ct, cv::bigint AS cv, (cv + mx)::bigint AS ms, nt::bigint AS nt FROM n)"
    " SELECT r AS rank, NULL::bigint AS company_id, NULL::bigint[] AS users,"
    "  pg_temp.scale_pick(ARRAY['55','55','55','55','55','55','55','55','55','55','52','52','57','54','56','1',"
    "  '34','351'], hashint8extended(r, 71), 0) AS cc,"
    "  ct AS n_contacts, (sum(ct) OVER (ORDER BY r) - ct)::bigint AS o_contacts,"
    "  cv AS n_conversations, (sum(cv) OVER (ORDER BY r) - cv)::bigint AS o_conversations,"
    "  ms AS n_messages, (sum(ms) OVER (ORDER BY r) - ms)::bigint AS o_messages,"
    "  nt AS n_notifications, (sum(nt) OVER (ORDER BY r) - nt)::bigint AS o_notifications"
    " FROM m";

static const char scale_sql_companies[] =
    "INSERT INTO companies (slug, name, created_at, updated_at)"
    " SELECT 'scale-' || lpad(rank::text, 5, '0'), 'Scale Company ' || rank, t, t"
    " FROM (SELECT rank, pg_temp.scale_ago(63072000 - rank * 600) AS t FROM scale_plan) s ORDER BY rank";

static const char scale_sql_plan_companies[] = "UPDATE scale_plan p SET company_id = c.id FROM companies c"
                                               " WHERE c.slug = 'scale-' || lpad(p.rank::text, 5, '0')";

/* 1 admin + 4 agents; users[1] is the admin (emails sort admin@ < agent1@ < ...). */
static const char scale_sql_users[] =
    "INSERT INTO users (company_id, email, name, role, password_hash, created_at, updated_at)"
    " SELECT company_id, CASE WHEN s = 0 THEN 'admin' ELSE 'agent' || s END || '@scale-'"
    "  || lpad(rank::text, 5, '0') || '.conversa.dev',"
    "  pg_temp.scale_pick(pg_temp.scale_first_names(), h, 0) || ' '"
    "  || pg_temp.scale_pick(pg_temp.scale_last_names(), h, 16),"
    "  CASE WHEN s = 0 THEN 'admin' ELSE 'agent' END, NULL, t, t"
    " FROM (SELECT p.company_id, p.rank, s, hashint8extended(p.rank * 8 + s, 61) AS h,"
    "  pg_temp.scale_ago(62000000 - s * 86400) AS t FROM scale_plan p CROSS JOIN generate_series(0, 4) AS s) u"
    " ORDER BY rank, s";

static const char scale_sql_plan_users[] =
    "UPDATE scale_plan p SET users = (SELECT array_agg(u.id ORDER BY u.email) FROM users u"
    " WHERE u.company_id = p.company_id)";

/* $1..$2 rows, $3 id base. Contacts exist from 200 to 700 days ago. */
static const char scale_sql_contacts[] =
    "INSERT INTO contacts (company_id, id, phone_number, wa_id, name, labels, created_at, updated_at)"
    " OVERRIDING SYSTEM VALUE"
    " SELECT company_id, $3::bigint + g, phone, phone, name, labels, t, t FROM ("
    " SELECT company_id, g, pg_temp.scale_contact_phone(cc, g - o_contacts - 1, n_contacts, g) AS phone,"
    "  pg_temp.scale_contact_name(hk, hk2) AS name,"
    "  (ARRAY['{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{cliente}', '{cliente}', '{cliente}',"
    "   '{cliente}', '{lead}', '{lead}', '{cliente,vip}', '{cliente,recorrente}', '{suporte}',"
    "   '{cliente,financeiro}', '{lead,campanha}']::text[])[1 + pg_temp.scale_bits(hk, 48) % 20]::text[] AS labels,"
    "  pg_temp.scale_ago(17280000 + 43200000 * pg_temp.scale_unit(hk, 0)) AS t"
    " FROM (SELECT p.company_id, p.cc, p.o_contacts, p.n_contacts, g, hashint8extended(g, 11) AS hk,"
    "  hashint8extended(g, 12) AS hk2" SCALE_RANGE("contacts") " OFFSET 0) a) b";

/* $1..$2 rows, $3 id base, $4 contacts' id base. 70% assigned; unread when the newest
 * message is inbound and the conversation not resolved. */
static const char scale_sql_conversations[] =
    "INSERT INTO conversations (company_id, id, contact_id, assignee_id, status, unread_count,"
    " last_message_at, last_message_preview, created_at, updated_at) OVERRIDING SYSTEM VALUE"
    " SELECT company_id, $3::bigint + g,"
    "  $4::bigint + o_contacts + 1 + pg_temp.scale_conv_contact(k, v, n_contacts, hc3),"
    "  CASE WHEN pg_temp.scale_pct(hc2, 32) < 70 THEN users[1 + pg_temp.scale_bits(hc2, 48) % 5] END,"
    "  pg_temp.scale_conv_status(hc),"
    "  CASE WHEN pg_temp.scale_conv_status(hc) <> 'resolved' AND pg_temp.scale_conv_last_inbound(hc2)"
    "   THEN 1 ELSE 0 END,"
    "  updated, left(pg_temp.scale_conv_last_body(hc2), 120), updated - pg_temp.scale_conv_span(hc), updated"
    " FROM (SELECT *, pg_temp.scale_conv_updated(k, v, hc) AS updated FROM ("
    " SELECT p.company_id, p.users, p.o_contacts, p.n_contacts, g, g - p.o_conversations - 1 AS k,"
    "  p.n_conversations AS v, hashint8extended(g, 31) AS hc, hashint8extended(g, 32) AS hc2,"
    "  hashint8extended(g, 33) AS hc3" SCALE_RANGE("conversations") " OFFSET 0) a OFFSET 0) b";

/* The messages are written conversation by conversation: steps are ranges of
 * conversations holding about 1/$1 of the $2 messages each: first, last, messages. */
static const char scale_sql_message_steps[] =
    "SELECT min(gc), max(gc), sum(cnt)::bigint FROM ("
    " SELECT gc, pg_temp.scale_msgs_before(k + 1, v, e) - pg_temp.scale_msgs_before(k, v, e) AS cnt,"
    "  o_messages + pg_temp.scale_msgs_before(k, v, e) AS before FROM ("
    " SELECT p.o_messages, gc, gc - p.o_conversations - 1 AS k, p.n_conversations AS v,"
    "  p.n_messages - p.n_conversations AS e FROM scale_plan p CROSS JOIN LATERAL"
    "  generate_series(p.o_conversations + 1, p.o_conversations + p.n_conversations) AS gc OFFSET 0) a) b"
    " GROUP BY before * $1::bigint / $2::bigint ORDER BY 1";

/* $1..$2 conversations, $3 conversations' id base. Message i of a conversation's cnt
 * is number g (unique: wamid); they are spread over the conversation's lifetime in
 * order, the last at its updated_at with its preview's text. Inbound: 'received'
 * when it is the last of an unresolved conversation, else 'read'. Outbound: read,
 * delivered, sent or failed; most have an agent as sender, some are automatic. */
static const char scale_sql_messages[] =
    "INSERT INTO messages (company_id, conversation_id, direction, type, body, payload, wamid, status,"
    " error_code, error_title, sender_id, created_at, updated_at, status_at)"
    " SELECT company_id, $3::bigint + gc, direction, type, body, payload, 'wamid.S' || g, status,"
    "  CASE WHEN status = 'failed' THEN 131026 END, CASE WHEN status = 'failed' THEN 'Message undeliverable' END,"
    "  sender_id, created_at, status_at, status_at FROM ("
    " SELECT *, CASE WHEN direction = 'inbound' THEN created_at"
    "  ELSE least(date_trunc('second', now()), created_at + interval '1 second' * (1 + pg_temp.scale_bits(hm2, 0)"
    "  % 1800)) END AS status_at FROM ("
    " SELECT company_id, g, gc, hm2, direction, created_at, type,"
    "  CASE WHEN type <> 'text' THEN NULL WHEN last THEN pg_temp.scale_conv_last_body(hc2)"
    "   WHEN direction = 'inbound' THEN pg_temp.scale_pick(pg_temp.scale_inbound(), hm2, 0)"
    "   ELSE pg_temp.scale_pick(pg_temp.scale_outbound(), hm2, 0) END AS body,"
    "  CASE type WHEN 'image' THEN jsonb_build_object('id', g::text, 'mime_type', 'image/jpeg')"
    "   WHEN 'audio' THEN jsonb_build_object('id', g::text, 'mime_type', 'audio/ogg') END AS payload,"
    "  CASE WHEN direction = 'inbound'"
    "   THEN CASE WHEN last AND pg_temp.scale_conv_status(hc) <> 'resolved' THEN 'received' ELSE 'read' END"
    "   WHEN pg_temp.scale_pct(hm2, 16) < 60 THEN 'read' WHEN pg_temp.scale_pct(hm2, 16) < 86 THEN 'delivered'"
    "   WHEN pg_temp.scale_pct(hm2, 16) < 97 THEN 'sent' ELSE 'failed' END AS status,"
    "  CASE WHEN direction = 'outbound' AND pg_temp.scale_pct(hm2, 48) >= 10"
    "   THEN users[1 + pg_temp.scale_bits(hm2, 48) / 100 % 5] END AS sender_id FROM ("
    " SELECT *,"
    "  CASE WHEN last THEN updated"
    "   ELSE updated - span * ((cnt - 1 - i + 0.9 * pg_temp.scale_unit(hm, 24)) / cnt) END AS created_at,"
    "  CASE WHEN last THEN CASE WHEN pg_temp.scale_conv_last_inbound(hc2) THEN 'inbound' ELSE 'outbound' END"
    "   WHEN pg_temp.scale_pct(hm, 48) < 52 THEN 'inbound' ELSE 'outbound' END AS direction,"
    "  CASE WHEN last OR pg_temp.scale_pct(hm2, 32) < 92 THEN 'text'"
    "   WHEN pg_temp.scale_pct(hm2, 32) < 97 THEN 'image' ELSE 'audio' END AS type FROM ("
    " SELECT *, hashint8extended(g, 41) AS hm, hashint8extended(g, 42) AS hm2 FROM ("
    " SELECT b.*, i, b.g0 + i AS g, i = b.cnt - 1 AS last FROM ("
    " SELECT company_id, users, gc, hc, hc2, pg_temp.scale_conv_updated(k, v, hc) AS updated,"
    "  pg_temp.scale_conv_span(hc) AS span, o_messages + pg_temp.scale_msgs_before(k, v, e) + 1 AS g0,"
    "  pg_temp.scale_msgs_before(k + 1, v, e) - pg_temp.scale_msgs_before(k, v, e) AS cnt FROM ("
    " SELECT p.company_id, p.users, p.o_messages, g AS gc, g - p.o_conversations - 1 AS k,"
    "  p.n_conversations AS v, p.n_messages - p.n_conversations AS e, hashint8extended(g, 31) AS hc,"
    "  hashint8extended(g, 32) AS hc2" SCALE_RANGE("conversations") " OFFSET 0) a OFFSET 0) b"
                                                                    " CROSS JOIN LATERAL generate_series(0, b.cnt - 1) "
                                                                    "AS i) c OFFSET 0) d OFFSET 0) e OFFSET 0) f) h";

/* $1..$2 rows, $3 conversations' id base, $4 contacts' id base. Each user of a company
 * gets a fifth of its notifications, newest first; each is about one of the company's
 * conversations and names its contact; 30% unread. */
static const char scale_sql_notifications[] =
    "INSERT INTO notifications (company_id, user_id, type, title, body, data, is_read, created_at, read_at)"
    " SELECT company_id, users[1 + slot], type,"
    "  CASE type WHEN 'message.received' THEN 'Nova mensagem de ' || who"
    "   WHEN 'conversation.assigned' THEN 'Conversa atribuída a você'"
    "   WHEN 'conversation.unassigned' THEN 'Nova conversa sem responsável' ELSE 'Conversa resolvida' END,"
    "  CASE WHEN type = 'message.received' THEN said ELSE left(who || ': ' || said, 120) END,"
    "  jsonb_build_object('conversation_id', $3::bigint + gc, 'contact_id', $4::bigint + gk),"
    "  is_read, created_at, CASE WHEN is_read THEN least(date_trunc('second', now()),"
    "   created_at + interval '1 second' * (60 + pg_temp.scale_bits(hn2, 0) % 7200)) END FROM ("
    " SELECT company_id, users, slot, gc, gk, hn2,"
    "  CASE WHEN pg_temp.scale_pct(hn2, 0) < 60 THEN 'message.received'"
    "   WHEN pg_temp.scale_pct(hn2, 0) < 85 THEN 'conversation.assigned'"
    "   WHEN pg_temp.scale_pct(hn2, 0) < 95 THEN 'conversation.unassigned' ELSE 'conversation.resolved' END AS type,"
    "  coalesce(pg_temp.scale_contact_name(hk, hk2), '+' || pg_temp.scale_contact_phone(cc, gk - oct - 1, nct, gk))"
    "   AS who,"
    "  pg_temp.scale_pick(pg_temp.scale_inbound(), hn2, 16) AS said,"
    "  pg_temp.scale_pct(hn2, 32) >= 30 AS is_read,"
    "  pg_temp.scale_ago(15552000 * power((k * 5 - slot * n + 5 * pg_temp.scale_unit(hn, 32)) / (n + 5), 2))"
    "   AS created_at FROM ("
    " SELECT *, hashint8extended(gk, 11) AS hk, hashint8extended(gk, 12) AS hk2 FROM ("
    " SELECT *, oct + 1 + pg_temp.scale_conv_contact(gc - oc - 1, nc, nct, hc3) AS gk FROM ("
    " SELECT *, hashint8extended(gc, 33) AS hc3 FROM ("
    " SELECT *, oc + 1 + (hn & 4294967295) % nc AS gc, k * 5 / n AS slot FROM ("
    " SELECT p.company_id, p.users, p.cc, p.o_conversations AS oc, p.n_conversations AS nc, p.o_contacts AS oct,"
    "  p.n_contacts AS nct, g - p.o_notifications - 1 AS k, p.n_notifications AS n,"
    "  hashint8extended(g, 51) AS hn, hashint8extended(g, 52) AS hn2" SCALE_RANGE(
        "notifications") " OFFSET 0) a OFFSET 0) b OFFSET 0) c OFFSET 0) d OFFSET 0) e OFFSET 0) f";

/* Children first, so the companies' cascade finds little left to do row by row. */
static const char *const scale_sql_delete[] = {
    "DELETE FROM messages WHERE company_id IN (SELECT id FROM companies WHERE slug LIKE 'scale-%')",
    "DELETE FROM notifications WHERE company_id IN (SELECT id FROM companies WHERE slug LIKE 'scale-%')",
    "DELETE FROM conversations WHERE company_id IN (SELECT id FROM companies WHERE slug LIKE 'scale-%')",
    "DELETE FROM contacts WHERE company_id IN (SELECT id FROM companies WHERE slug LIKE 'scale-%')",
    "DELETE FROM companies WHERE slug LIKE 'scale-%'",
};

/* Reserves $1 ids on a table's identity sequence; returns the id before the block. */
#define SCALE_SQL_RESERVE(table)                                                                                       \
    "SELECT setval(pg_get_serial_sequence('" table "', 'id'), nextval(pg_get_serial_sequence('" table "', 'id'))"      \
    " + $1::bigint - 1) - $1::bigint"

/* ---- output -------------------------------------------------------------------------- */

static double scale_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1234567 -> "1,234,567" */
static const char *scale_commas(long long v, char *buf, size_t cap)
{
    char digits[32];
    int n = snprintf(digits, sizeof(digits), "%lld", v < 0 ? -v : v);
    size_t o = 0;
    if (v < 0 && o + 1 < cap)
        buf[o++] = '-';
    for (int i = 0; i < n && o + 2 < cap; ++i) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* Seconds as m:ss, or h:mm:ss from an hour on. */
static const char *scale_clock(double secs, char *buf, size_t cap)
{
    long s = (long)secs;
    if (s >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

typedef struct scale_bar {
    const char *label;
    long long total;
    long long done;
    double started;
    int tty;
} scale_bar_t;

static void scale_bar_draw(const scale_bar_t *b)
{
    if (!b->tty)
        return;
    char bar[SCALE_BAR + 1], done[32], total[32], clock[32];
    int filled = b->total > 0 ? (int)(b->done * SCALE_BAR / b->total) : SCALE_BAR;
    for (int i = 0; i < SCALE_BAR; ++i)
        bar[i] = i < filled ? '#' : '-';
    bar[SCALE_BAR] = '\0';
    fprintf(stderr, "\r%-13s [%s] %3d%%  %s/%s  %s  ", b->label, bar,
            b->total > 0 ? (int)(b->done * 100 / b->total) : 100, scale_commas(b->done, done, sizeof(done)),
            scale_commas(b->total, total, sizeof(total)), scale_clock(scale_now() - b->started, clock, sizeof(clock)));
    fflush(stderr);
}

static void scale_bar_start(scale_bar_t *b, const char *label, long long total, int tty)
{
    *b = (scale_bar_t){.label = label, .total = total, .done = 0, .started = scale_now(), .tty = tty};
    scale_bar_draw(b);
}

static void scale_bar_finish(scale_bar_t *b, const char *unit)
{
    char count[32];
    if (b->tty) {
        scale_bar_draw(b);
        fputc('\n', stderr);
    } else {
        fprintf(stderr, "%-13s %13s %s  %6.1f s\n", b->label, scale_commas(b->done, count, sizeof(count)), unit,
                scale_now() - b->started);
    }
    fflush(stderr);
}

/* ---- database ------------------------------------------------------------------------ */

/* Runs one statement with up to 5 bigint parameters; the caller clears the result. */
static PGresult *scale_query(PGconn *db, const char *sql, int nparams, const long long *params)
{
    char text[5][24];
    const char *values[5];
    for (int i = 0; i < nparams && i < 5; ++i) {
        snprintf(text[i], sizeof(text[i]), "%lld", params[i]);
        values[i] = text[i];
    }
    return PQexecParams(db, sql, nparams < 5 ? nparams : 5, NULL, values, NULL, NULL, 0);
}

/* Runs one statement; returns the rows it affected (or returned), or -1 after logging. */
static long long scale_exec(PGconn *db, const char *what, const char *sql, int nparams, const long long *params)
{
    PGresult *res = scale_query(db, sql, nparams, params);
    ExecStatusType st = PQresultStatus(res);
    long long rows = -1;
    if (st == PGRES_TUPLES_OK)
        rows = PQntuples(res);
    else if (st == PGRES_COMMAND_OK)
        rows = *PQcmdTuples(res) != '\0' ? atoll(PQcmdTuples(res)) : 0;
    else
        log_error("seed", "%s failed: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return rows;
}

/* One bigint from a single-row query; returns 0 or -1 after logging. */
static int scale_value(PGconn *db, const char *what, const char *sql, int nparams, const long long *params,
                       long long *out)
{
    PGresult *res = scale_query(db, sql, nparams, params);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    if (ok)
        *out = atoll(PQgetvalue(res, 0, 0));
    else
        log_error("seed", "%s failed: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

/* Fills one big table in SCALE_CHUNKS statements, with $1..$2 the rows of the step and
 * nbases id bases as $3 (and $4); returns the rows inserted or -1. */
static long long scale_fill(PGconn *db, const char *label, const char *sql, long long total, int nbases,
                            long long base_a, long long base_b, int tty)
{
    scale_bar_t bar;
    scale_bar_start(&bar, label, total, tty);
    long long step = (total + SCALE_CHUNKS - 1) / SCALE_CHUNKS;
    for (long long lo = 1; lo <= total; lo += step) {
        long long hi = lo + step - 1 < total ? lo + step - 1 : total;
        long long params[4] = {lo, hi, base_a, base_b};
        long long rows = scale_exec(db, label, sql, 2 + nbases, params);
        if (rows < 0) {
            if (tty)
                fputc('\n', stderr);
            return -1;
        }
        bar.done += rows;
        scale_bar_draw(&bar);
    }
    scale_bar_finish(&bar, "rows");
    return bar.done;
}

/* Fills messages conversation by conversation, in the steps scale_sql_message_steps
 * chooses; returns the rows inserted or -1. */
static long long scale_fill_messages(PGconn *db, long long total, long long conversations_base, int tty)
{
    long long step_params[2] = {SCALE_CHUNKS, total};
    PGresult *steps = scale_query(db, scale_sql_message_steps, 2, step_params);
    if (PQresultStatus(steps) != PGRES_TUPLES_OK) {
        log_error("seed", "planning the messages failed: %s", PQresultErrorMessage(steps));
        PQclear(steps);
        return -1;
    }
    scale_bar_t bar;
    scale_bar_start(&bar, "messages", total, tty);
    for (int r = 0; r < PQntuples(steps); ++r) {
        long long params[3] = {atoll(PQgetvalue(steps, r, 0)), atoll(PQgetvalue(steps, r, 1)), conversations_base};
        long long rows = scale_exec(db, "messages", scale_sql_messages, 3, params);
        if (rows < 0) {
            if (tty)
                fputc('\n', stderr);
            PQclear(steps);
            return -1;
        }
        bar.done += rows;
        scale_bar_draw(&bar);
    }
    PQclear(steps);
    scale_bar_finish(&bar, "rows");
    return bar.done;
}

/* ---- flags --------------------------------------------------------------------------- */

static void scale_usage(FILE *out)
{
    fprintf(out, "usage: conversa seed --scale [--companies N] [--contacts N] [--conversations N]\n"
                 "                             [--messages N] [--notifications N] [--replace]\n\n"
                 "Generates realistic data at scale for benchmarks and EXPLAIN tests: companies\n"
                 "'scale-00001', 'scale-00002', ... each with an admin and 4 agents\n"
                 "(admin@scale-00001.conversa.dev, agent1@..., no password), and contacts,\n"
                 "conversations, messages and notifications shared out by Zipf-like weights\n"
                 "(1/rank^1.2): at the default scale the largest company holds about 23%% of\n"
                 "every table. Everything is written in one transaction, then VACUUM (ANALYZE)\n"
                 "runs, so that the data is ready to be measured.\n"
                 "Progress goes to stderr; the totals and the largest company to stdout.\n\n"
                 "  --companies N       companies (default 1,000; at most 99,999)\n"
                 "  --contacts N        contacts (default 1,000,000; at least one per company;\n"
                 "                      at most 100,000,000)\n"
                 "  --conversations N   conversations (default 1,000,000; at least one per company;\n"
                 "                      at most 100,000,000)\n"
                 "  --messages N        messages (default 10,000,000; at least one per conversation;\n"
                 "                      at most 1,000,000,000)\n"
                 "  --notifications N   notifications (default 2,000,000; at least one per company;\n"
                 "                      at most 100,000,000)\n"
                 "  --replace           delete existing 'scale-%%' companies (and everything they\n"
                 "                      own) and seed again; without it, existing scale data is\n"
                 "                      left alone and the command exits 0\n\n"
                 "Numbers are plain digits (--companies 50 or --companies=50). Bad flags exit with\n"
                 "status 2.\n");
}

/* Digits only, 1 .. max. */
static int scale_parse_count(const char *s, long long max, long long *out)
{
    if (*s == '\0' || strlen(s) > 12)
        return -1;
    long long v = 0;
    for (const char *c = s; *c; ++c) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (*c - '0');
    }
    if (v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

static int scale_parse(int argc, char **argv, scale_opts_t *o)
{
    *o = (scale_opts_t){0};
    for (size_t f = 0; f < SCALE_NFLAGS; ++f)
        *(long long *)((char *)o + scale_flags[f].offset) = scale_flags[f].def;
    for (int i = 1; i < argc; ++i) {
        const char *arg = argv[i];
        if (strcmp(arg, "--scale") == 0)
            continue;
        if (strcmp(arg, "--replace") == 0) {
            o->replace = 1;
            continue;
        }
        const struct scale_flag *flag = NULL;
        const char *value = NULL;
        for (size_t f = 0; f < SCALE_NFLAGS && flag == NULL; ++f) {
            size_t n = strlen(scale_flags[f].name);
            if (strcmp(arg, scale_flags[f].name) == 0) {
                flag = &scale_flags[f];
                value = i + 1 < argc ? argv[++i] : NULL;
            } else if (strncmp(arg, scale_flags[f].name, n) == 0 && arg[n] == '=') {
                flag = &scale_flags[f];
                value = arg + n + 1;
            }
        }
        if (flag == NULL) {
            fprintf(stderr, "conversa seed --scale: unknown option '%s' (see --help)\n", arg);
            return -1;
        }
        char max[32];
        if (value == NULL || scale_parse_count(value, flag->max, (long long *)((char *)o + flag->offset)) != 0) {
            fprintf(stderr, "conversa seed --scale: %s needs a whole number from 1 to %s\n", flag->name,
                    scale_commas(flag->max, max, sizeof(max)));
            return -1;
        }
    }
    static const struct {
        size_t offset, at_least;
        const char *why;
    } rules[] = {
        {offsetof(scale_opts_t, contacts), offsetof(scale_opts_t, companies), "every company needs a contact"},
        {offsetof(scale_opts_t, conversations), offsetof(scale_opts_t, companies),
         "every company needs a conversation"},
        {offsetof(scale_opts_t, messages), offsetof(scale_opts_t, conversations), "every conversation needs a message"},
        {offsetof(scale_opts_t, notifications), offsetof(scale_opts_t, companies),
         "every company needs a notification"},
    };
    for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); ++r) {
        long long v = *(long long *)((char *)o + rules[r].offset);
        long long min = *(long long *)((char *)o + rules[r].at_least);
        if (v < min) {
            const char *name = "", *min_name = "";
            for (size_t f = 0; f < SCALE_NFLAGS; ++f) {
                if (scale_flags[f].offset == rules[r].offset)
                    name = scale_flags[f].name;
                if (scale_flags[f].offset == rules[r].at_least)
                    min_name = scale_flags[f].name;
            }
            char a[32], b[32];
            fprintf(stderr, "conversa seed --scale: %s %s is less than %s %s (%s)\n", name,
                    scale_commas(v, a, sizeof(a)), min_name, scale_commas(min, b, sizeof(b)), rules[r].why);
            return -1;
        }
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------------- */

/* Session settings: no statement timeout, UTC, no JIT; a dropped client aborts the work. */
static int scale_session(PGconn *db)
{
    static const char *const settings[] = {
        "SET client_encoding = 'UTF8'", "SET statement_timeout = 0",
        "SET lock_timeout = 0",         "SET idle_in_transaction_session_timeout = 0",
        "SET TimeZone = 'UTC'",         "SET jit = off",
        "SET work_mem = '64MB'",        "SET client_connection_check_interval = '2s'",
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); ++i)
        if (scale_exec(db, "session setup", settings[i], 0, NULL) < 0)
            return -1;
    return 0;
}

/* Reserves n ids on the contacts' and conversations' identity sequences. */
static int scale_reserve(PGconn *db, const scale_opts_t *o, long long *contacts_base, long long *conversations_base)
{
    if (scale_exec(db, "reserving ids", "BEGIN", 0, NULL) < 0)
        return -1;
    int rc =
        scale_exec(db, "reserving ids", "LOCK TABLE contacts, conversations IN EXCLUSIVE MODE", 0, NULL) < 0 ? -1 : 0;
    if (rc == 0)
        rc = scale_value(db, "reserving contact ids", SCALE_SQL_RESERVE("contacts"), 1, &o->contacts, contacts_base);
    if (rc == 0)
        rc = scale_value(db, "reserving conversation ids", SCALE_SQL_RESERVE("conversations"), 1, &o->conversations,
                         conversations_base);
    if (scale_exec(db, "reserving ids", rc == 0 ? "COMMIT" : "ROLLBACK", 0, NULL) < 0)
        rc = -1;
    return rc;
}

typedef struct scale_totals {
    long long companies, users, contacts, conversations, messages, notifications;
} scale_totals_t;

static int scale_delete(PGconn *db, int tty)
{
    scale_bar_t bar;
    size_t n = sizeof(scale_sql_delete) / sizeof(scale_sql_delete[0]);
    scale_bar_start(&bar, "replace", (long long)n, tty);
    long long rows = 0;
    for (size_t i = 0; i < n; ++i) {
        if ((rows = scale_exec(db, "deleting the previous scale data", scale_sql_delete[i], 0, NULL)) < 0) {
            if (tty)
                fputc('\n', stderr);
            return -1;
        }
        bar.done++;
        scale_bar_draw(&bar);
    }
    if (!tty)
        bar.done = rows; /* the last statement deletes the companies */
    scale_bar_finish(&bar, tty ? "statements" : "companies deleted");
    return 0;
}

/* Everything between BEGIN and COMMIT. */
static int scale_generate(PGconn *db, const scale_opts_t *o, int tty, long long contacts_base,
                          long long conversations_base, scale_totals_t *t)
{
    long long plan[5] = {o->companies, o->contacts, o->conversations, o->messages, o->notifications};
    if (o->replace && scale_delete(db, tty) != 0)
        return -1;
    PGresult *res = PQexec(db, scale_sql_helpers); /* several statements: no parameters */
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("seed", "creating the helper functions failed: %s", PQresultErrorMessage(res));
    PQclear(res);
    if (!ok || scale_exec(db, "planning", scale_sql_plan, 5, plan) < 0)
        return -1;

    scale_bar_t bar;
    scale_bar_start(&bar, "companies", o->companies, tty);
    if ((t->companies = scale_exec(db, "companies", scale_sql_companies, 0, NULL)) < 0 ||
        scale_exec(db, "companies", scale_sql_plan_companies, 0, NULL) < 0)
        return -1;
    bar.done = t->companies;
    scale_bar_finish(&bar, "rows");

    scale_bar_start(&bar, "users", o->companies * 5, tty);
    if ((t->users = scale_exec(db, "users", scale_sql_users, 0, NULL)) < 0 ||
        scale_exec(db, "users", scale_sql_plan_users, 0, NULL) < 0)
        return -1;
    bar.done = t->users;
    scale_bar_finish(&bar, "rows");

    if ((t->contacts = scale_fill(db, "contacts", scale_sql_contacts, o->contacts, 1, contacts_base, 0, tty)) < 0)
        return -1;
    if ((t->conversations = scale_fill(db, "conversations", scale_sql_conversations, o->conversations, 2,
                                       conversations_base, contacts_base, tty)) < 0)
        return -1;
    if ((t->messages = scale_fill_messages(db, o->messages, conversations_base, tty)) < 0)
        return -1;
    if ((t->notifications = scale_fill(db, "notifications", scale_sql_notifications, o->notifications, 2,
                                       conversations_base, contacts_base, tty)) < 0)
        return -1;
    return 0;
}

/* The largest company by its conversation counters. */
static void scale_report_largest(PGconn *db, long long conversations)
{
    PGresult *res = PQexec(db, "SELECT c.slug, sum(cc.n)::bigint, p.n_contacts, p.n_messages"
                               " FROM conversation_counts cc JOIN companies c ON c.id = cc.company_id"
                               " JOIN scale_plan p ON p.company_id = c.id"
                               " GROUP BY c.id, c.slug, p.n_contacts, p.n_messages ORDER BY 2 DESC LIMIT 1");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        long long convs = atoll(PQgetvalue(res, 0, 1));
        char a[32], b[32], c[32];
        printf("largest company: %s with %s conversations (%.1f%%), %s contacts, %s messages\n", PQgetvalue(res, 0, 0),
               scale_commas(convs, a, sizeof(a)),
               conversations > 0 ? 100.0 * (double)convs / (double)conversations : 0.0,
               scale_commas(atoll(PQgetvalue(res, 0, 2)), b, sizeof(b)),
               scale_commas(atoll(PQgetvalue(res, 0, 3)), c, sizeof(c)));
    } else {
        log_error("seed", "reading the largest company failed: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
}

static int scale_run(PGconn *db, const scale_opts_t *o, int tty)
{
    double started = scale_now();
    if (scale_session(db) != 0)
        return 1;
    if (scale_exec(db, "taking the seed lock", "SELECT pg_advisory_lock(" SCALE_LOCK_KEY ")", 0, NULL) < 0)
        return 1;
    long long existing = 0;
    if (scale_value(db, "looking for scale data", "SELECT count(*) FROM companies WHERE slug LIKE 'scale-%'", 0, NULL,
                    &existing) != 0)
        return 1;
    if (existing > 0 && !o->replace) {
        char n[32];
        printf("scale data already present (%s companies 'scale-%%'); nothing changed. Use --replace to seed it "
               "again.\n",
               scale_commas(existing, n, sizeof(n)));
        return 0;
    }
    long long contacts_base = 0, conversations_base = 0;
    if (scale_reserve(db, o, &contacts_base, &conversations_base) != 0)
        return 1;

    scale_totals_t t = {0};
    if (scale_exec(db, "starting the transaction", "BEGIN", 0, NULL) < 0)
        return 1;
    if (scale_generate(db, o, tty, contacts_base, conversations_base, &t) != 0) {
        PQclear(PQexec(db, "ROLLBACK"));
        return 1;
    }
    if (scale_exec(db, "committing", "COMMIT", 0, NULL) < 0)
        return 1;

    scale_bar_t bar;
    scale_bar_start(&bar, "vacuum", 9, tty);
    if (scale_exec(db, "vacuum",
                   "VACUUM (ANALYZE) companies, users, contacts, conversations, messages, notifications,"
                   " conversation_counts, contact_counts, notification_counts",
                   0, NULL) < 0)
        return 1;
    bar.done = 9;
    scale_bar_finish(&bar, "tables");

    char c[6][32], clock[32];
    printf("seeded %s companies, %s users, %s contacts, %s conversations, %s messages, %s notifications in %s\n",
           scale_commas(t.companies, c[0], sizeof(c[0])), scale_commas(t.users, c[1], sizeof(c[1])),
           scale_commas(t.contacts, c[2], sizeof(c[2])), scale_commas(t.conversations, c[3], sizeof(c[3])),
           scale_commas(t.messages, c[4], sizeof(c[4])), scale_commas(t.notifications, c[5], sizeof(c[5])),
           scale_clock(scale_now() - started, clock, sizeof(clock)));
    scale_report_largest(db, t.conversations);
    return 0;
}

int cli_seed_scale(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        scale_usage(stdout);
        return 0;
    }
    scale_opts_t opts;
    if (scale_parse(argc, argv, &opts) != 0)
        return 2;
    if (config_load() != 0)
        return 2;
    PGconn *db = migrate_connect(config.database_url, config.db_wait_s);
    if (db == NULL)
        return 1;
    int rc = scale_run(db, &opts, isatty(STDERR_FILENO));
    PQfinish(db);
    fflush(stdout);
    return rc;
}

-- Demo data: one company ('demo'), two users, one WhatsApp connection,
-- 8 contacts, 8 conversations with their messages, 4 notifications.
--
-- Idempotent: if a company with slug 'demo' already exists, nothing is inserted
-- (the company insert is ON CONFLICT DO NOTHING, so two concurrent runs are safe
-- too). No ids are hard-coded: rows are found by slug, email and phone number.
-- Users get password_hash NULL; the program sets the hashes afterwards.
-- Timestamps are relative to now(), so the demo always looks recent.

SET client_encoding = 'UTF8';

DO $seed$
DECLARE
    v_company bigint;
    v_admin   bigint;
    v_agent   bigint;
    v_conn    bigint;
    v_now     timestamptz := date_trunc('second', now());
BEGIN
    INSERT INTO companies (slug, name, created_at, updated_at)
    VALUES ('demo', 'Demo Company', v_now - interval '30 days', v_now - interval '30 days')
    ON CONFLICT (slug) DO NOTHING
    RETURNING id INTO v_company;

    IF v_company IS NULL THEN
        RAISE NOTICE 'demo company already exists; nothing to seed';
        RETURN;
    END IF;

    INSERT INTO users (company_id, email, name, role, password_hash, created_at, updated_at)
    VALUES (v_company, 'admin@demo.conversa.dev', 'Ana Admin', 'admin', NULL,
            v_now - interval '30 days', v_now - interval '30 days')
    RETURNING id INTO v_admin;

    INSERT INTO users (company_id, email, name, role, password_hash, created_at, updated_at)
    VALUES (v_company, 'agent@demo.conversa.dev', 'Bruno Agent', 'agent', NULL,
            v_now - interval '29 days', v_now - interval '29 days')
    RETURNING id INTO v_agent;

    INSERT INTO connections (company_id, slug, name, phone_number_id, display_phone_number,
                             verify_token, status, created_at, updated_at)
    VALUES (v_company, 'demo', 'Demo WhatsApp', '100000000000001', '+55 11 4000-0000',
            'demo-verify-token', 'active',
            v_now - interval '29 days', v_now - interval '29 days')
    RETURNING id INTO v_conn;

    -- Contacts. wa_id is what Meta sends: the same E.164 digits.
    INSERT INTO contacts (company_id, phone_number, wa_id, name, labels)
    SELECT v_company, c.phone, c.phone, c.name, c.labels
    FROM (VALUES
        ('5511987650001', 'Mariana Souza',   '{cliente,vip}'::text[]),
        ('5511987650002', 'Carlos Oliveira', '{cliente}'::text[]),
        ('5521987650003', 'Fernanda Lima',   '{cliente,troca}'::text[]),
        ('5531987650004', 'Rafael Santos',   '{}'::text[]),
        ('5541987650005', 'Juliana Pereira', '{lead}'::text[]),
        ('5551987650006', 'Pedro Almeida',   '{cliente,financeiro}'::text[]),
        ('5561987650007', 'Beatriz Costa',   '{cliente,vip}'::text[]),
        ('5571987650008', 'Lucas Ferreira',  '{lead}'::text[])
    ) AS c (phone, name, labels);

    -- One conversation per contact; assignee by email (NULL = unassigned).
    INSERT INTO conversations (company_id, contact_id, connection_id, assignee_id, status)
    SELECT v_company, ct.id, v_conn, u.id, cv.status
    FROM (VALUES
        ('5511987650001', 'open',     'agent@demo.conversa.dev'),
        ('5511987650002', 'open',     'admin@demo.conversa.dev'),
        ('5521987650003', 'pending',  'agent@demo.conversa.dev'),
        ('5531987650004', 'resolved', 'admin@demo.conversa.dev'),
        ('5541987650005', 'open',     NULL),
        ('5551987650006', 'pending',  NULL),
        ('5561987650007', 'resolved', 'agent@demo.conversa.dev'),
        ('5571987650008', 'open',     'admin@demo.conversa.dev')
    ) AS cv (phone, status, assignee)
    JOIN contacts ct ON ct.company_id = v_company AND ct.phone_number = cv.phone
    LEFT JOIN users u ON u.company_id = v_company AND u.email = cv.assignee;

    -- Messages. Inbound: 'read' once an agent has seen it, 'received' otherwise.
    -- Outbound: sender by email; NULL sender is the automatic greeting.
    INSERT INTO messages (company_id, conversation_id, direction, type, body, wamid,
                          status, sender_id, created_at, updated_at, status_at)
    SELECT v_company, cv.id, m.direction, 'text', m.body,
           'wamid.DEMO' || lpad(m.seq::text, 4, '0'),
           m.status, u.id,
           v_now - make_interval(mins => m.mins_ago),
           v_now - make_interval(mins => m.mins_ago)
                 + CASE WHEN m.status IN ('delivered', 'read') THEN interval '1 minute'
                        ELSE interval '0' END,
           v_now - make_interval(mins => m.mins_ago)
                 + CASE WHEN m.status IN ('delivered', 'read') THEN interval '1 minute'
                        ELSE interval '0' END
    FROM (VALUES
        -- Mariana: late delivery, open, waiting for the agent (1 unread).
        (1,  '5511987650001', 95,   'inbound',  'Olá, boa tarde! Fiz um pedido na semana passada (nº 48213) e ainda não chegou.', 'read', NULL),
        (2,  '5511987650001', 90,   'outbound', 'Boa tarde, Mariana! Sou o Bruno e vou verificar o status do seu pedido agora mesmo.', 'read', 'agent@demo.conversa.dev'),
        (3,  '5511987650001', 86,   'outbound', 'Verifiquei aqui: o pedido 48213 saiu para entrega hoje cedo e deve chegar até as 18h.', 'read', 'agent@demo.conversa.dev'),
        (4,  '5511987650001', 12,   'inbound',  'Ainda não chegou e já são quase 18h. Vocês conseguem confirmar com a transportadora?', 'received', NULL),
        -- Carlos: duplicate bank slip, answered.
        (5,  '5511987650002', 240,  'inbound',  'Bom dia! Preciso da segunda via do boleto de março.', 'read', NULL),
        (6,  '5511987650002', 232,  'outbound', 'Bom dia, Carlos! Pode me confirmar o CPF do titular, por favor?', 'read', 'admin@demo.conversa.dev'),
        (7,  '5511987650002', 230,  'inbound',  'Claro, é o CPF terminado em 789-00.', 'read', NULL),
        (8,  '5511987650002', 225,  'outbound', 'Pronto! Enviei a segunda via para o seu e-mail cadastrado, com vencimento atualizado para o dia 15.', 'delivered', 'admin@demo.conversa.dev'),
        -- Fernanda: exchange, pending on the customer.
        (9,  '5521987650003', 1500, 'inbound',  'Oi, recebi a blusa no tamanho errado. Como faço a troca?', 'read', NULL),
        (10, '5521987650003', 1490, 'outbound', 'Oi, Fernanda! Sinto muito pelo transtorno. A troca é gratuita: basta gerar a etiqueta de devolução no nosso site.', 'read', 'agent@demo.conversa.dev'),
        (11, '5521987650003', 1488, 'outbound', 'Assim que a transportadora coletar, enviamos o tamanho certo. Qual tamanho você prefere?', 'sent', 'agent@demo.conversa.dev'),
        -- Rafael: opening hours, resolved.
        (12, '5531987650004', 2900, 'inbound',  'Qual o horário de funcionamento da loja no sábado?', 'read', NULL),
        (13, '5531987650004', 2880, 'outbound', 'Olá, Rafael! Aos sábados abrimos das 9h às 14h.', 'read', 'admin@demo.conversa.dev'),
        (14, '5531987650004', 2875, 'inbound',  'Perfeito, obrigado!', 'read', NULL),
        (15, '5531987650004', 2870, 'outbound', 'Por nada! Qualquer dúvida é só chamar.', 'delivered', 'admin@demo.conversa.dev'),
        -- Juliana: new lead, unassigned, only the automatic greeting (2 unread).
        (16, '5541987650005', 8,    'inbound',  'Olá! Vocês entregam em Curitiba?', 'received', NULL),
        (17, '5541987650005', 7,    'outbound', 'Olá! Obrigado pelo contato. Em instantes um de nossos atendentes vai falar com você.', 'delivered', NULL),
        (18, '5541987650005', 5,    'inbound',  'E qual o prazo de entrega para o CEP 80010-000?', 'received', NULL),
        -- Pedro: double charge, pending on the finance team.
        (19, '5551987650006', 400,  'inbound',  'Meu cartão foi cobrado duas vezes na mesma compra.', 'read', NULL),
        (20, '5551987650006', 390,  'outbound', 'Olá, Pedro. Abrimos uma solicitação com o financeiro (protocolo 2024-0611). O estorno aparece em até duas faturas.', 'read', 'admin@demo.conversa.dev'),
        (21, '5551987650006', 385,  'inbound',  'Ok, fico no aguardo.', 'read', NULL),
        -- Beatriz: address change, resolved.
        (22, '5561987650007', 4400, 'inbound',  'Quero alterar o endereço de entrega do meu pedido.', 'read', NULL),
        (23, '5561987650007', 4390, 'outbound', 'Claro, Beatriz! Qual é o novo endereço?', 'read', 'agent@demo.conversa.dev'),
        (24, '5561987650007', 4385, 'inbound',  'Rua das Palmeiras, 120, apto 31, Brasília.', 'read', NULL),
        (25, '5561987650007', 4380, 'outbound', 'Endereço atualizado! A previsão de entrega continua a mesma.', 'read', 'agent@demo.conversa.dev'),
        (26, '5561987650007', 4378, 'inbound',  'Ótimo, muito obrigada!', 'read', NULL),
        -- Lucas: stock and price question, open (2 unread).
        (27, '5571987650008', 60,   'inbound',  'Boa tarde, vocês têm o modelo X200 em estoque?', 'read', NULL),
        (28, '5571987650008', 55,   'outbound', 'Boa tarde, Lucas! Temos sim, nas cores preta e prata.', 'read', 'admin@demo.conversa.dev'),
        (29, '5571987650008', 3,    'inbound',  'Quanto fica com frete para Salvador?', 'received', NULL),
        (30, '5571987650008', 2,    'inbound',  'E dá pra parcelar no cartão?', 'received', NULL)
    ) AS m (seq, phone, mins_ago, direction, body, status, sender)
    JOIN contacts ct ON ct.company_id = v_company AND ct.phone_number = m.phone
    JOIN conversations cv ON cv.company_id = v_company AND cv.contact_id = ct.id
    LEFT JOIN users u ON u.company_id = v_company AND u.email = m.sender;

    -- Conversation summaries from their messages: created at the first message,
    -- updated at the last, preview of the last, unread = inbound not yet read.
    UPDATE conversations cv
    SET created_at           = s.first_at,
        updated_at           = s.last_at,
        last_message_at      = s.last_at,
        last_message_preview = left(s.last_body, 120),
        unread_count         = s.unread
    FROM (
        SELECT m.conversation_id,
               min(m.created_at) AS first_at,
               max(m.created_at) AS last_at,
               (array_agg(m.body ORDER BY m.created_at DESC, m.id DESC))[1] AS last_body,
               count(*) FILTER (WHERE m.direction = 'inbound' AND m.status = 'received')::int AS unread
        FROM messages m
        WHERE m.company_id = v_company
        GROUP BY m.conversation_id
    ) s
    WHERE cv.company_id = v_company AND cv.id = s.conversation_id;

    -- A contact exists since its first message.
    UPDATE contacts ct
    SET created_at = cv.created_at,
        updated_at = cv.created_at
    FROM conversations cv
    WHERE ct.company_id = v_company
      AND cv.company_id = v_company
      AND cv.contact_id = ct.id;

    -- Notifications for the admin: 2 unread, 2 read.
    INSERT INTO notifications (company_id, user_id, type, title, body, data,
                               is_read, created_at, read_at)
    SELECT v_company, v_admin, n.type, n.title, n.body,
           jsonb_build_object('conversation_id', cv.id, 'contact_id', ct.id),
           n.is_read,
           v_now - make_interval(mins => n.mins_ago),
           CASE WHEN n.is_read
                THEN v_now - make_interval(mins => n.mins_ago) + interval '2 minutes' END
    FROM (VALUES
        ('5571987650008', 'message.received',        'Nova mensagem de Lucas Ferreira',
         'E dá pra parcelar no cartão?', false, 2),
        ('5541987650005', 'conversation.unassigned', 'Nova conversa sem responsável',
         'Juliana Pereira: Olá! Vocês entregam em Curitiba?', false, 8),
        ('5511987650002', 'conversation.assigned',   'Conversa atribuída a você',
         'Carlos Oliveira: segunda via do boleto', true, 240),
        ('5531987650004', 'conversation.resolved',   'Conversa resolvida',
         'Rafael Santos: horário de funcionamento', true, 2870)
    ) AS n (phone, type, title, body, is_read, mins_ago)
    JOIN contacts ct ON ct.company_id = v_company AND ct.phone_number = n.phone
    JOIN conversations cv ON cv.company_id = v_company AND cv.contact_id = ct.id;

    RAISE NOTICE 'demo company seeded (company_id %, admin %, agent %, connection %)',
        v_company, v_admin, v_agent, v_conn;
END
$seed$;
